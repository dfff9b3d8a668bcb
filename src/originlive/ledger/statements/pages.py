"""HTML routes of the ledger: statements, the operator's book and the month's reconciliation.

- ``/console/shops/{shop_id}/statement?month=2026-11``: the shop's month (its managers);
  ``&format=csv`` or ``&format=pdf`` downloads it.
- ``/anchor/statement?month=``: the signed-in anchor's commission, the same way.
- ``/operator/ledger``: every account with its balance (``?prefix=shop:``), an account's
  postings (``?account=shop:12:available``) and the latest payouts.
- ``/operator/ledger/reconciliation?month=``: the month's money in and out against what is held.

Templates live in ``ledger/templates`` (the loader finds a top-level feature's folder only).
"""

import asyncio
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from originlive.accounts.deps import Operator
from originlive.catalog.deps import OwnedShop
from originlive.db import SessionDep
from originlive.ledger.accounts import Holder
from originlive.ledger.payouts import service as payouts
from originlive.ledger.payouts.deps import Anchor
from originlive.ledger.statements import export, service
from originlive.ledger.statements.api import MonthParam
from originlive.logistics import pdf
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import gettext as _
from originlive.web.templating import render

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Format = Annotated[Literal["html", "csv", "pdf"], Query(alias="format")]
AccountQuery = Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9_:]*$")]
ENTRIES_SHOWN = 200  # postings of an account on the operator's page
LINES_SHOWN = 500  # postings on a statement's page; the downloads hold them all


def _labels() -> dict[str, Any]:
    return {
        "kinds": {kind: _(label) for kind, label in export.KINDS.items()},
        "bucket_names": {b: _(label) for b, label in export.BUCKET_NAMES.items()},
        "buckets": service.BUCKETS,
    }


async def _statement(
    request: Request,
    session: SessionDep,
    *,
    holder: Holder,
    holder_id: int,
    name: str,
    month: service.Month,
    fmt: str,
    template: str,
    context: dict[str, Any],
) -> Response:
    conn = await session.connection()
    found = await conn.run_sync(
        lambda c: service.statement(c, holder=holder, holder_id=holder_id, month=month)
    )
    filename = f"statement-{holder}-{holder_id}-{month}"
    if fmt == "csv":
        body = await asyncio.to_thread(export.statement_csv, found, name)
        return _download(body, f"{filename}.csv", "text/csv; charset=utf-8")
    if fmt == "pdf":
        font = await asyncio.to_thread(pdf.font_name, request.app.state.settings.pdf_font)
        body = await asyncio.to_thread(export.statement_pdf, found, name, font=font)
        return _download(body, f"{filename}.pdf", "application/pdf")
    page = {
        "statement": found, "summary": export.summary(found), "month": month,
        "lines": found.lines[-LINES_SHOWN:], "more_lines": max(len(found.lines) - LINES_SHOWN, 0),
        "yuan": export.yuan, **_labels(), **context,
    }  # fmt: skip
    return render(request, template, page)


def _download(body: bytes, filename: str, media_type: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers | {"Cache-Control": "no-store"})


def _shop_url(shop_id: int) -> str:
    return f"/console/shops/{shop_id}/statement"


@router.get("/console/shops/{shop_id}/statement", response_class=HTMLResponse)
async def shop_statement(
    request: Request, shop: OwnedShop, session: SessionDep, month: MonthParam, fmt: Format = "html"
) -> Response:
    """The shop's statement of a month: page, CSV or PDF."""
    return await _statement(
        request, session, holder=Holder.SHOP, holder_id=shop.id, name=shop.name, month=month,
        fmt=fmt, template="ledger/shop_statement.html",
        context={"shop": shop, "tab": "statement", "statement_url": _shop_url(shop.id)},
    )  # fmt: skip


@router.get("/anchor/statement", response_class=HTMLResponse)
async def anchor_statement(
    request: Request, anchor: Anchor, session: SessionDep, month: MonthParam, fmt: Format = "html"
) -> Response:
    """The anchor's statement of a month: page, CSV or PDF."""
    return await _statement(
        request, session, holder=Holder.ANCHOR, holder_id=anchor.id, name=anchor.display_name,
        month=month, fmt=fmt, template="ledger/anchor_statement.html",
        context={"statement_url": "/anchor/statement"},
    )  # fmt: skip


@router.get("/operator/ledger", response_class=HTMLResponse)
async def book(
    request: Request,
    session: SessionDep,
    _user: Operator,
    prefix: AccountQuery = "",
    account: AccountQuery = "",
) -> Response:
    """Every account and its balance; an account's postings; the latest payouts."""
    conn = await session.connection()

    def read(c: Any) -> dict[str, Any]:
        return {
            "accounts": [(n, fen) for n, fen in service.accounts(c, prefix=prefix) if fen],
            "entries": payouts.lines(
                c, accounts=[account], limit=ENTRIES_SHOWN, newest_first=True
            ) if account else [],
            "payouts": payouts.list_payouts(c, limit=20),
        }  # fmt: skip

    context = await conn.run_sync(read)
    context |= {"prefix": prefix, "account": account, "here_tab": "ledger", **_labels()}
    return render(request, "ledger/book.html", context)


@router.get("/operator/ledger/reconciliation", response_class=HTMLResponse)
async def reconciliation(
    request: Request, session: SessionDep, _user: Operator, month: MonthParam
) -> Response:
    """The month's money in and out against what the book holds, to the fen."""
    conn = await session.connection()
    found = await conn.run_sync(lambda c: service.reconciliation(c, month=month))
    context = {"r": found, "month": month, "here_tab": "ledger", "yuan": export.yuan}
    return render(request, "ledger/reconciliation.html", context)
