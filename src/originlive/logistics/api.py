"""JSON routes of the delivery network: nodes, shipping an order, parcels, scans, bags and
pick-up."""

from typing import Annotated

from fastapi import File, Path, Query, Response, UploadFile, status

from originlive.accounts.deps import CurrentUser, Operator
from originlive.catalog.api import Limit, Offset
from originlive.catalog.deps import RowId, Storage
from originlive.catalog.schemas import Page
from originlive.db import SessionDep, utcnow
from originlive.errors import InvalidInput, NotFound
from originlive.logistics import fastpath, schemas, service, tracking
from originlive.logistics.deps import NodeDep, StationStaff, VisibleParcel
from originlive.logistics.models import DeliveryNode, NodeLink
from originlive.orders import schemas as order_schemas
from originlive.orders import service as orders
from originlive.orders.deps import ShopOrder, VisibleOrder, Writer
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["delivery"])


# The network


def _shown_node(node: DeliveryNode, link: NodeLink | None) -> schemas.Node:
    """A node as the API shows it, with the node serving it."""
    return schemas.Node.model_validate(node).model_copy(
        update={
            "upstream_id": link.upstream_id if link else None,
            "transit_minutes": link.transit_minutes if link else None,
        }
    )


async def _node_view(session: SessionDep, node: DeliveryNode) -> schemas.Node:
    return _shown_node(node, await service.upstream_link(session, node_id=node.id))


@router.get("/delivery-nodes", response_model=list[schemas.Node])
async def list_nodes(
    session: SessionDep, region: Annotated[str | None, Query(pattern=r"^[0-9]{6,12}$")] = None
) -> list[schemas.Node]:
    """Hubs, stations and points (at a region and below it), each with the node serving it."""
    return [
        _shown_node(node, link)
        for node, link in await service.list_nodes(session, region_code=region)
    ]


@router.post("/delivery-nodes", status_code=status.HTTP_201_CREATED, response_model=schemas.Node)
async def create_node(body: schemas.NodeCreate, session: SessionDep, _: Operator) -> schemas.Node:
    """Open a county hub, township station or village point (operators)."""
    node = await service.create_node(session, data=body)
    return await _node_view(session, node)


@router.patch("/delivery-nodes/{node_id}", response_model=schemas.Node)
async def update_node(
    body: schemas.NodeUpdate, node: NodeDep, session: SessionDep, _: Operator
) -> schemas.Node:
    """Change a node's details, home delivery, or close it to new parcels (operators)."""
    await service.update_node(session, node=node, data=body)
    return await _node_view(session, node)


@router.put("/delivery-nodes/{node_id}/upstream", response_model=schemas.Node)
async def link_node(
    body: schemas.NodeLinkSet, node: NodeDep, session: SessionDep, _: Operator
) -> schemas.Node:
    """Say which node serves this one, and the usual time from it (operators)."""
    await service.link(
        session, node=node, upstream_id=body.upstream_id, transit_minutes=body.transit_minutes
    )
    return await _node_view(session, node)


@router.post("/delivery-nodes/{node_id}/staff", status_code=status.HTTP_204_NO_CONTENT)
async def add_staff(
    body: schemas.StaffAdd, node: NodeDep, session: SessionDep, _: Operator
) -> Response:
    """Make an account staff of the node, with the station role (operators)."""
    await service.add_staff(session, node=node, email=body.email)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/delivery-nodes/{node_id}/staff/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_staff(node: NodeDep, user_id: RowId, session: SessionDep, _: Operator) -> Response:
    """Take an account off the node's staff; it loses the station role (operators)."""
    await service.remove_staff(session, node=node, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Shipping an order, and its parcels


@router.post("/orders/{order_id}/ship", response_model=order_schemas.Order)
async def ship_order(
    body: schemas.ShipmentCreate,
    order: ShopOrder,
    session: SessionDep,
    writer: Writer,
    user: CurrentUser,
) -> order_schemas.Order:
    """The shop has packed a paid order: it becomes shipped, as parcels routed through the
    delivery network to the point serving the buyer, or with an outside carrier's waybill."""
    await service.ship(session, writer, order=order, actor=user, data=body)
    fresh = await orders.get_order(session, order_id=order.id)
    assert fresh is not None
    return order_schemas.Order.model_validate(fresh)


def _shown(parcel: schemas.Parcel, *, as_buyer: bool) -> schemas.Parcel:
    return parcel if as_buyer else parcel.model_copy(update={"pickup_code": None})


@router.get("/orders/{order_id}/parcels", response_model=list[schemas.Parcel])
async def order_parcels(
    order: VisibleOrder, session: SessionDep, user: CurrentUser
) -> list[schemas.Parcel]:
    """The order's parcels with their paths (its buyer, its shop, operators); the pick-up
    code only to the buyer."""
    parcels = await service.parcel_views(
        session, await service.order_parcels(session, order_id=order.id)
    )
    return [_shown(p, as_buyer=order.buyer_id == user.id) for p in parcels]


@router.get("/parcels/{code}", response_model=schemas.Parcel)
async def get_parcel(seen: VisibleParcel, session: SessionDep, storage: Storage) -> schemas.Parcel:
    """A parcel and its path: to its buyer, its shop, the staff of a node it passes, and
    operators; with the photo taken when it was delivered, if one was."""
    (shown,) = await service.parcel_views(session, [seen.parcel])
    proof = await service.proof_of(session, parcel_id=seen.parcel.id)
    if proof is not None:
        shown = shown.model_copy(update={"proof_photo_url": storage.url(proof.photo_key)})
    return _shown(shown, as_buyer=seen.as_buyer)


@router.post(
    "/parcels/{code}/proof", status_code=status.HTTP_201_CREATED, response_model=schemas.Proof
)
async def add_proof(
    code: Annotated[str, Path(pattern=r"^OL[0-9]{10}$")],
    file: Annotated[UploadFile, File(description="A JPEG, PNG or WebP photo.")],
    staff: StationStaff,
    session: SessionDep,
    storage: Storage,
) -> schemas.Proof:
    """A photo as proof of delivery, by the staff of the point that delivered the parcel,
    once; the format is read from the bytes, not the file name."""
    parcel = await service.get_parcel(session, code=code)
    if parcel is None:
        raise NotFound(f"No parcel {code}.")
    # BodyLimitMiddleware has already refused bodies over settings.max_upload_bytes.
    proof = await service.add_proof(
        session,
        parcel=parcel,
        node=staff.node,
        actor=staff.user,
        storage=storage,
        data=await file.read(),
    )
    return schemas.Proof(
        parcel_code=parcel.code,
        photo_url=storage.url(proof.photo_key),
        recorded_at=proof.recorded_at,
    )


@router.get("/station/parcels", response_model=Page[schemas.Parcel])
async def station_parcels(
    staff: StationStaff, session: SessionDep, limit: Limit = 20, offset: Offset = 0
) -> Page[schemas.Parcel]:
    """The parcels whose route passes the caller's node, latest news first (station staff)."""
    parcels, total = await service.node_parcels(
        session, node_id=staff.node.id, limit=limit, offset=offset
    )
    items = [_shown(p, as_buyer=False) for p in await service.parcel_views(session, parcels)]
    return Page(items=items, total=total, limit=limit, offset=offset)


# Scans, bags and pick-up


def _recorded(done: tracking.Recorded) -> schemas.ScanRecorded:
    return schemas.ScanRecorded(
        event_id=done.event_id,
        parcel_code=done.parcel_code,
        status=done.status,
        duplicate=done.duplicate,
        off_route=done.off_route,
        clock_off=done.clock_off,
        pickup_code=None,
    )


@router.post("/scans", status_code=status.HTTP_201_CREATED, response_model=schemas.ScanResult)
async def scan(
    body: schemas.ScanCreate, staff: StationStaff, writer: Writer, response: Response
) -> schemas.ScanResult:
    """A scan at the caller's node, of a parcel or of a bag (each parcel in it). A scan sent
    again (the same ``scan_id``) is answered 200 with the event recorded the first time; a
    scan at a node off the route is recorded and flagged; a phone's time that cannot be
    right is replaced by ours and flagged."""
    # Bearer-token staff are mostly answered before FastAPI (``logistics.fastpath``).
    code, result = await fastpath.record(
        writer, body, node_id=staff.node.id, actor_id=staff.user.id
    )
    response.status_code = code
    return result


@router.post("/bags", status_code=status.HTTP_201_CREATED, response_model=schemas.Bag)
async def make_bag(
    body: schemas.BagCreate, staff: StationStaff, writer: Writer, session: SessionDep
) -> schemas.Bag:
    """Seal parcels bound for one station into a bag at the caller's node; a seal once."""
    if len(set(body.parcels)) != len(body.parcels):
        raise InvalidInput("A parcel is listed twice.", field="parcels")
    destination = await service.get_node(session, node_id=body.destination_id)
    if destination is None:
        raise InvalidInput(f"No node {body.destination_id}.", field="destination_id")
    await writer.run(
        tracking.make_bag,
        seal=body.seal,
        origin_id=staff.node.id,
        destination_id=destination.id,
        codes=body.parcels,
        now=utcnow(),
    )
    return await _bag(session, body.seal)


async def _bag(session: SessionDep, seal: str) -> schemas.Bag:
    bag = await service.get_bag(session, seal=seal)
    assert bag is not None
    codes = await service.bag_parcels(session, bag_id=bag.id)
    return schemas.Bag.model_validate(bag).model_copy(update={"parcels": codes})


@router.post("/bags/{seal}/take-out", response_model=schemas.Bag)
async def take_out(
    seal: Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{4,24}$")],
    body: schemas.TakeOut,
    staff: StationStaff,
    writer: Writer,
    session: SessionDep,
) -> schemas.Bag:
    """Take a parcel out of its bag: from then on it is scanned on its own."""
    await writer.run(tracking.take_out, seal=seal, code=body.parcel_code)
    return await _bag(session, seal)


@router.post("/parcels/{code}/pickup", response_model=schemas.ScanRecorded)
async def pick_up(
    code: Annotated[str, Path(pattern=r"^OL[0-9]{10}$")],
    body: schemas.PickupCreate,
    staff: StationStaff,
    writer: Writer,
) -> schemas.ScanRecorded:
    """The buyer, or whom they named, collects the parcel at the caller's point with its
    pick-up code. A wrong code is 422 with the tries left; the fifth locks the parcel for 15
    minutes (423, with ``Retry-After``)."""
    done = await writer.run(
        tracking.pick_up,
        code=code,
        pickup_code=body.pickup_code,
        collected_by=body.collected_by,
        node_id=staff.node.id,
        actor_id=staff.user.id,
        scan_id=body.scan_id,
        now=utcnow(),
    )
    if done.collected is None:
        if done.locked_until is not None:
            wait = int((done.locked_until - utcnow()).total_seconds()) + 1
            raise tracking.Locked(
                f"Wrong code {tracking.PICKUP_TRIES} times: parcel {code} is locked.",
                retry_after=wait,
            )
        raise InvalidInput(
            f"Wrong pick-up code; {done.tries_left} tries left before it locks.",
            field="pickup_code",
        )
    return _recorded(done.collected)


# What the notifier sent


@router.get("/notifications", response_model=Page[schemas.Notification])
async def notifications(
    session: SessionDep, _: Operator, limit: Limit = 20, offset: Offset = 0
) -> Page[schemas.Notification]:
    """Messages sent to buyers about their parcels, newest first (operators; the sandbox
    notifier's record)."""
    rows = await service.notifications(session, limit=limit, offset=offset)
    total = await service.count_notifications(session)
    items = [schemas.Notification.model_validate(n) for n in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)
