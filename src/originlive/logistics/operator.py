"""HTML routes of the operator's delivery network console: the network as a tree (a region's
part of it, if one is chosen), opening a node, a node's page to edit, close or reopen and
re-link it and to add its staff; what the sandbox notifier sent; and the scans flagged off
route or with a phone's clock that was not believed.

Forms are read into the JSON API's schemas and changed by ``logistics.service``, as the API
changes them, and every change is audited. A form that works is answered with a 303 to the
node's page; a refused one is the page again (422) with each error beside its field and
nothing written. Where htmx has loaded, the node page's forms swap its main section only.
"""

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.deps import Operator
from originlive.accounts.models import User
from originlive.catalog.deps import RowId
from originlive.catalog.pages import MAX_PAGE, PageParam
from originlive.db import SessionDep
from originlive.errors import InvalidInput
from originlive.logistics import queries, schemas, service
from originlive.logistics.deps import NodeDep
from originlive.logistics.models import DeliveryNode, NodeKind, NodeLink
from originlive.regions import service as regions
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.forms import field_errors, refused_field, typed, whole
from originlive.web.templating import N_, gettext, render

router = Router(
    prefix="/operator/delivery",
    tags=["pages"],
    include_in_schema=False,
    dependencies=[Depends(get_viewer)],
)

PAGE_SIZE = 30
# Longer than any field allows, so that what was typed is shown again with its message; the
# body limit bounds it anyway.
Text = Annotated[str, Form(max_length=2000)]
RegionParam = Annotated[str, Query(max_length=12, pattern=r"^[0-9]*$")]

MESSAGES = {
    "kind": N_("Choose a county hub, a township station or a village point."),
    "region_code": N_("Enter the code of its region, 6 to 12 digits."),
    "name": N_("Enter a name on one line, at most 80 characters."),
    "address": N_("At most 200 characters, on one line."),
    "opening_hours": N_("At most 80 characters, on one line, such as 每天 8:00-20:00."),
    "phone": N_("Enter a phone number: digits, with spaces or dashes if you like."),
    "upstream_id": N_("Choose the node one level up that serves it."),
    "transit_minutes": N_("Enter the usual minutes from the upstream node, 0 to 43200."),
    "email": N_("Enter the e-mail address of an account."),
}
NO_REGION = N_("No place has this code.")
# The region levels create_node takes for each kind (``service._NODE_LEVELS``).
WRONG_LEVEL = {
    NodeKind.COUNTY_HUB: N_("A county hub is at a county, or at a city without counties."),
    NodeKind.TOWNSHIP_STATION: N_("A township station is at a township."),
    NodeKind.VILLAGE_POINT: N_("A village point is at a village or a township."),
}
WRONG_UPSTREAM = N_(
    "Choose the node one level up: a county hub serves a station, a station serves a point."
)
NO_ACCOUNT = N_("No account has this e-mail address.")
NOT_EMPTIED = N_("This cannot be emptied once given; type what it is now.")
DONE = {
    "opened": N_("The node is open."),
    "saved": N_("Saved."),
    "closed": N_("The node is closed: no new parcels are routed through it."),
    "reopened": N_("The node is open again."),
    "linked": N_("The node is linked."),
    "staffed": N_("%(email)s now works at this node."),
    "unstaffed": N_("%(email)s no longer works at this node."),
}


def _errors_of(exc: ValidationError) -> dict[str, str]:
    # NodeCreate's phone is a union (a number, or nothing): pydantic names the member that
    # refused it ("constrained-str") after the field.
    return field_errors(exc, MESSAGES, {"constrained-str": "phone"})


def _number(text: str) -> int:
    """A number typed in a field, or -1 (which every schema here refuses, naming the field)."""
    number = whole(text)
    return -1 if number is None else number


async def _audit(
    session: AsyncSession, operator: User, action: str, node: DeliveryNode, **detail: Any
) -> None:
    await accounts.record_audit(
        session, actor=operator, action=f"delivery_node.{action}", target_type="delivery_node",
        target_id=node.id, detail=detail,
    )  # fmt: skip


# The network


async def _network(
    request: Request,
    session: AsyncSession,
    *,
    region: str = "",
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    """The tree (at ``region`` and below it), with the form that opens a node."""
    region_error = None
    try:
        network = await queries.tree(session, region_code=region or None)
    except InvalidInput:  # an unknown region: the whole network, with the filter's error
        network = await queries.tree(session)
        region_error, status_code = gettext(NO_REGION), 422
    place = await regions.get(session, code=region) if region and not region_error else None
    context = {
        "region": region,
        "place": place,
        "region_error": region_error,
        "network": network,
        "upstreams": await queries.upstream_choices(
            session, kinds=(NodeKind.COUNTY_HUB, NodeKind.TOWNSHIP_STATION)
        ),
        "values": values or {"transit_minutes": "240"},
        "errors": errors or {},
    }
    return render(request, "logistics/operator/network.html", context, status_code=status_code)


@router.get("", response_class=HTMLResponse)
async def network(
    request: Request, operator: Operator, session: SessionDep, region: RegionParam = ""
) -> HTMLResponse:
    """The delivery network as a tree: hubs, their stations, their points."""
    return await _network(request, session, region=region)


def _creation(form: dict[str, str]) -> dict[str, Any]:
    """The open form as ``NodeCreate``'s fields: optional blanks left out."""
    fields: dict[str, Any] = {
        "kind": form.get("kind", ""),
        "region_code": form.get("region_code", "").strip(),
        "name": form.get("name", ""),
        "home_delivery": bool(form.get("home_delivery")),
    }
    for name in ("address", "opening_hours", "phone"):
        if form.get(name, "").strip():
            fields[name] = form[name].strip() if name == "phone" else form[name]
    for name in ("upstream_id", "transit_minutes"):
        if form.get(name, "").strip():
            fields[name] = _number(form[name])
    return fields


async def _region_error(session: AsyncSession, code: str, kind: NodeKind) -> str:
    """Why create_node refused the region: unknown, or not of the kind's level."""
    if await regions.get(session, code=code) is None:
        return gettext(NO_REGION)
    return gettext(WRONG_LEVEL[kind])


@router.post("/nodes", response_class=HTMLResponse)
async def open_node(
    request: Request,
    operator: Operator,
    session: SessionDep,
    kind: Text = "",
    region_code: Text = "",
    name: Text = "",
    address: Text = "",
    opening_hours: Text = "",
    phone: Text = "",
    home_delivery: Text = "",
    upstream_id: Text = "",
    transit_minutes: Text = "",
) -> Response:
    """Open a county hub, township station or village point, linked to its upstream node."""
    form = await typed(request)
    try:
        data = schemas.NodeCreate(**_creation(form))
    except ValidationError as exc:
        return await _network(
            request, session, status_code=422, values=form, errors=_errors_of(exc)
        )
    try:
        async with session.begin_nested():  # a refused link takes the new node back with it
            node = await service.create_node(session, data=data)
    except InvalidInput as exc:
        field = refused_field(exc)
        if field == "region_code":
            message = await _region_error(session, data.region_code, data.kind)
        else:
            field, message = "upstream_id", gettext(WRONG_UPSTREAM)
        errors = {field: message}
        return await _network(request, session, status_code=422, values=form, errors=errors)
    await _audit(
        session, operator, "open", node, kind=node.kind.value, region_code=node.region_code,
        name=node.name, upstream_id=data.upstream_id,
    )  # fmt: skip
    return _back(node, "opened")


# A node


def _back(node: DeliveryNode, done: str, **more: str) -> RedirectResponse:
    query = urlencode({"done": done, **more})
    return RedirectResponse(f"/operator/delivery/nodes/{node.id}?{query}", status_code=303)


async def _node_page(
    request: Request,
    session: AsyncSession,
    node: DeliveryNode,
    *,
    status_code: int = 200,
    notice: str | None = None,
    form: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    """The node's page (``form``: the one refused, shown again with ``values`` and ``errors``)."""
    link = await session.get(NodeLink, node.id)
    upstream = await service.get_node(session, node_id=link.upstream_id) if link else None
    above = [k for k in NodeKind if k.depth == node.kind.depth - 1]
    context = {
        "node": node,
        "link": link,
        "upstream": upstream,
        "region_name": (await queries.region_names(session, [node.region_code])).get(
            node.region_code, node.region_code
        ),
        "staff": await queries.staff_of(session, node_id=node.id),
        "served": await queries.served_by(session, node_id=node.id),
        "upstreams": await queries.upstream_choices(session, kinds=above),
        "notice": notice,
        "form": form,
        "values": values or {},
        "errors": errors or {},
    }
    return render(request, "logistics/operator/node.html", context, status_code=status_code)


@router.get("/nodes/{node_id}", response_class=HTMLResponse)
async def node_page(
    request: Request,
    operator: Operator,
    node: NodeDep,
    session: SessionDep,
    done: Annotated[str, Query(max_length=20)] = "",
    email: Annotated[str, Query(max_length=254)] = "",
) -> HTMLResponse:
    """A node: its details, upstream and downstream nodes and staff, with the forms to change
    them."""
    notice = gettext(DONE[done], email=email) if done in DONE else None
    return await _node_page(request, session, node, notice=notice)


def _refused(values: dict[str, str], field: str, node: DeliveryNode) -> str | None:
    """``NOT_EMPTIED`` if the form blanked a field the node has (the API cannot clear it)."""
    if not values.get(field, "").strip() and getattr(node, field):
        return gettext(NOT_EMPTIED)
    return None


@router.post("/nodes/{node_id}", response_class=HTMLResponse)
async def edit_node(
    request: Request, operator: Operator, node: NodeDep, session: SessionDep, name: Text = ""
) -> Response:
    """Change the node's name, address, opening hours, phone and home delivery."""
    form = await typed(request)
    fields: dict[str, Any] = {"name": name, "home_delivery": bool(form.get("home_delivery"))}
    errors: dict[str, str] = {}
    for field in ("address", "opening_hours", "phone"):
        if form.get(field, "").strip():
            fields[field] = form[field].strip() if field == "phone" else form[field]
        elif (message := _refused(form, field, node)) is not None:
            errors[field] = message
    try:
        data = schemas.NodeUpdate(**fields)
    except ValidationError as exc:
        errors = _errors_of(exc) | errors
    if errors:
        return await _node_page(
            request, session, node, status_code=422, form="edit", values=form, errors=errors
        )
    await service.update_node(session, node=node, data=data)
    await _audit(session, operator, "update", node, **data.model_dump(exclude_unset=True))
    return _back(node, "saved")


@router.post("/nodes/{node_id}/active", response_class=HTMLResponse)
async def open_or_close(
    operator: Operator,
    node: NodeDep,
    session: SessionDep,
    active: Annotated[Literal["0", "1"], Form()],
) -> Response:
    """Close the node to new parcels, or open it again."""
    data = schemas.NodeUpdate(active=active == "1")
    await service.update_node(session, node=node, data=data)
    done = "reopened" if data.active else "closed"
    await _audit(session, operator, "reopen" if data.active else "close", node)
    return _back(node, done)


@router.post("/nodes/{node_id}/upstream", response_class=HTMLResponse)
async def relink(
    request: Request,
    operator: Operator,
    node: NodeDep,
    session: SessionDep,
    upstream_id: Text = "",
    transit_minutes: Text = "",
) -> Response:
    """Say which node serves this one, and the usual minutes from it."""
    form = await typed(request)
    try:
        data = schemas.NodeLinkSet(
            upstream_id=_number(upstream_id), transit_minutes=_number(transit_minutes)
        )
        await service.link(
            session, node=node, upstream_id=data.upstream_id, transit_minutes=data.transit_minutes
        )
    except ValidationError as exc:
        errors = _errors_of(exc)
    except InvalidInput:  # no such node, or not one level up (checked before any write)
        errors = {"upstream_id": gettext(WRONG_UPSTREAM)}
    else:
        await _audit(session, operator, "link", node, **data.model_dump())
        return _back(node, "linked")
    return await _node_page(
        request, session, node, status_code=422, form="link", values=form, errors=errors
    )


@router.post("/nodes/{node_id}/staff", response_class=HTMLResponse)
async def add_staff(
    request: Request, operator: Operator, node: NodeDep, session: SessionDep, email: Text = ""
) -> Response:
    """Make an account, by its e-mail, staff of the node (with the station role)."""
    errors = {"email": gettext(MESSAGES["email"])}
    try:
        data = schemas.StaffAdd(email=email)
    except ValidationError as exc:
        errors = _errors_of(exc)
    else:
        try:
            user = await service.add_staff(session, node=node, email=data.email)
        except InvalidInput:  # no such account (looked up before anything is written)
            if data.email:
                errors = {"email": gettext(NO_ACCOUNT)}
        else:
            await _audit(session, operator, "add_staff", node, user_id=user.id, email=user.email)
            return _back(node, "staffed", email=user.email)
    return await _node_page(
        request, session, node, status_code=422, form="staff", values={"email": email},
        errors=errors,
    )  # fmt: skip


@router.post("/nodes/{node_id}/staff/{user_id}/remove", response_class=HTMLResponse)
async def remove_staff(
    operator: Operator, node: NodeDep, user_id: RowId, session: SessionDep
) -> Response:
    """Take an account off the node's staff (it loses the station role)."""
    user = await service.remove_staff(session, node=node, user_id=user_id)
    await _audit(session, operator, "remove_staff", node, user_id=user.id, email=user.email)
    return _back(node, "unstaffed", email=user.email)


# What the notifier sent, and the flagged scans


@router.get("/notifications", response_class=HTMLResponse)
async def notifications(
    request: Request, operator: Operator, session: SessionDep, page: PageParam = 1
) -> HTMLResponse:
    """The messages the notifier sent to buyers, newest first."""
    sent = await service.notifications(session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = await service.count_notifications(session)
    context = {
        "sent": sent,
        "codes": await queries.parcel_codes(session, (n.parcel_id for n in sent)),
        "total": total,
        "page": page,
        "has_next": page * PAGE_SIZE < total and page < MAX_PAGE,
    }
    return render(request, "logistics/operator/notifications.html", context)


@router.get("/flagged", response_class=HTMLResponse)
async def flagged(
    request: Request, operator: Operator, session: SessionDep, page: PageParam = 1
) -> HTMLResponse:
    """Scans made off their parcel's route or with a clock not believed, newest first."""
    scans, total = await queries.flagged_scans(
        session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    context = {
        "scans": scans,
        "total": total,
        "page": page,
        "has_next": page * PAGE_SIZE < total and page < MAX_PAGE,
    }
    return render(request, "logistics/operator/flagged.html", context)
