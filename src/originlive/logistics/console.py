"""Manifests and pick lists as pages that print, and as PDF and CSV downloads.

- ``/console/live/{session_id}/manifest``: a live session's pick list, its paid orders still
  to pack by county, township and village, and the manifest of each hub and station its
  parcels pass (the shop's managers and operators).
- ``/delivery/nodes/{node_id}/manifest``: the parcels still to reach a node or waiting there,
  by the node they go to next (the node's staff and operators).

Each prints on A4, or with ``?paper=80mm`` on a receipt printer's roll; ``?format=pdf`` and
``?format=csv`` download it (a session's CSV is one table: ``&part=picks|orders|parcels``).
PDF and CSV are made on a worker thread: a large session's PDF is a second of work that the
event loop must not wait on.
"""

import asyncio
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from originlive.accounts.deps import CurrentUser
from originlive.accounts.models import Role
from originlive.catalog.deps import can_manage
from originlive.db import SessionDep, utcnow
from originlive.errors import Forbidden
from originlive.live.deps import RunSession, shop_of
from originlive.logistics import manifests, pdf, printing, service
from originlive.logistics.deps import NodeDep
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import gettext as _
from originlive.web.templating import local, render

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Format = Annotated[Literal["html", "pdf", "csv"], Query(alias="format")]
PaperParam = Annotated[pdf.Paper, Query()]
PartParam = Annotated[printing.Part, Query()]


def _download(body: bytes, filename: str, media_type: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",  # buyers' (masked) names and villages
        },
    )


def _labels(paper: pdf.Paper) -> dict[str, Any]:
    return {
        "paper": paper,
        "narrow": paper == "80mm",
        "params": {"paper": paper},
        "statuses": {s: _(label) for s, label in printing.PARCEL_STATUSES.items()},
        "kinds": {k: _(label) for k, label in printing.NODE_KINDS.items()},
        "kg": printing.kilograms,
        "items_text": printing.items_text,
    }


async def _font(request: Request) -> str:
    # The first registration reads the font file (a tenth of a second): off the loop too.
    return await asyncio.to_thread(pdf.font_name, request.app.state.settings.pdf_font)


@router.get("/console/live/{session_id}/manifest", response_class=HTMLResponse)
async def session_manifest(
    request: Request,
    live: RunSession,
    session: SessionDep,
    user: CurrentUser,
    fmt: Format = "html",
    paper: PaperParam = "a4",
    part: PartParam = "orders",
) -> Response:
    """The session's pick list, orders to pack by destination, and its hubs' and stations'
    manifests (the shop's managers and operators: its anchor alone sees no buyers)."""
    shop = await shop_of(session, live)
    if shop is None:  # its shops each see their own orders
        raise Forbidden(f"Live session {live.id} is an anchor's own: it has no shop's orders.")
    if not can_manage(user, shop):
        raise Forbidden(f"Only the managers of shop {shop.id} see its orders.")
    manifest = await manifests.read_session(
        session, session_id=live.id, title=live.title, shop_name=shop.name
    )
    name = f"manifest-session-{live.id}"
    if fmt == "csv":
        body = await asyncio.to_thread(printing.session_csv, manifest, part)
        return _download(body, f"{name}-{part}.csv", "text/csv; charset=utf-8")
    if fmt == "pdf":
        font = await _font(request)
        body = await asyncio.to_thread(printing.session_pdf, manifest, paper=paper, font=font)
        return _download(body, f"{name}-{paper}.pdf", "application/pdf")
    context = {"manifest": manifest, "live": live, "shop": shop, **_labels(paper)}
    return render(request, "logistics/manifest/session.html", context)


@router.get("/delivery/nodes/{node_id}/manifest", response_class=HTMLResponse)
async def node_manifest(
    request: Request,
    node: NodeDep,
    session: SessionDep,
    user: CurrentUser,
    fmt: Format = "html",
    paper: PaperParam = "a4",
) -> Response:
    """The parcels still to reach the node or waiting there, by the node each goes to next
    (the node's staff and operators)."""
    if not user.has_role(Role.OPERATOR):
        mine = await service.staff_node(session, user=user) if user.has_role(Role.STATION) else None
        if mine is None or mine.id != node.id:
            raise Forbidden(f"Only the staff of node {node.id} and operators see its manifest.")
    manifest = await manifests.read_node(session, node_id=node.id)
    made_at = local(utcnow())
    name = f"manifest-node-{node.id}"
    if fmt == "csv":
        body = await asyncio.to_thread(printing.node_csv, manifest)
        return _download(body, f"{name}.csv", "text/csv; charset=utf-8")
    if fmt == "pdf":
        font = await _font(request)
        body = await asyncio.to_thread(
            printing.node_pdf, manifest, paper=paper, font=font, made_at=made_at
        )
        return _download(body, f"{name}-{paper}.pdf", "application/pdf")
    context = {"manifest": manifest, "made_at": made_at, **_labels(paper)}
    return render(request, "logistics/manifest/node.html", context)
