"""Statements and the reconciliation on both databases: a shop's and an anchor's month as a page
(Chinese and English), CSV and PDF; the month's money in, refunds and payouts adding up to
what is held, after real captures, refunds, releases and payouts; and who may see them."""

import datetime as dt
import io
from typing import Any

import pypdf
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import Role
from originlive.db import utcnow
from originlive.ledger import service as ledger
from originlive.ledger.models import EntryKind
from originlive.ledger.statements.service import Month
from originlive.web.templating import PLATFORM_TZ
from tests.ledger.test_payouts import deliver, earn, pay
from tests.ledger.test_settlement import delivered, refund, settle, sold_by_anchor
from tests.logistics.conftest import Network
from tests.orders.conftest import Market

NOVEMBER = Month(2026, 11)


def on(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=PLATFORM_TZ)


async def post(app: Any, key: str, kind: EntryKind, at: dt.datetime, **legs: int) -> None:
    entry = ledger.Entry(
        kind,
        "order:1",
        key,
        tuple(ledger.Leg(name.replace("__", ":"), fen) for name, fen in legs.items()),
        at,
    )
    await app.state.order_writer.run(ledger.post, entries=[entry])


async def a_month_of(app: Any, holder: str) -> None:
    """October's sale, and November's: a sale, its release, a refund after it and a payout.
    November: pending 0 → 0, available 9,000 → 9,000 + 10,000 - 1,200 - 5,000 = 12,800."""
    pending, available = f"{holder}__pending", f"{holder}__available"
    await earn(
        app, holder.replace("__", ":") + ":available", 9_000, at=on(1, 0) - dt.timedelta(days=3)
    )
    await post(
        app,
        f"{holder}-c",
        EntryKind.CAPTURE,
        on(3),
        clearing__payments=-10_000,
        **{pending: 10_000},
    )
    await post(
        app, f"{holder}-r", EntryKind.RELEASE, on(10), **{pending: -10_000, available: 10_000}
    )
    await post(
        app,
        f"{holder}-f",
        EntryKind.REFUND,
        on(12),
        clearing__payments=1_200,
        **{available: -1_200},
    )
    await post(
        app, f"{holder}-p", EntryKind.PAYOUT, on(20), payouts__sandbox=5_000, **{available: -5_000}
    )
    await post(
        app,
        f"{holder}-d",
        EntryKind.CAPTURE,
        on(30, 23) + dt.timedelta(hours=2),
        clearing__payments=-777,
        **{pending: 777},
    )  # December, in Beijing


async def test_a_shop_s_statement_as_a_page_csv_and_pdf_in_both_languages(
    app, client, market: Market, make_user
) -> None:
    await a_month_of(app, f"shop__{market.shop_id}")
    url = f"/console/shops/{market.shop_id}/statement?month=2026-11"
    headers = market.merchant.headers

    page = await client.get(url, headers=headers)
    assert page.status_code == 200, page.text
    for shown in ("Statement", "Opening balance", "¥90.00", "Closing balance", "¥128.00", "¥50.00"):
        assert shown in page.text, shown
    assert "does not add up" not in page.text
    chinese = await client.get(url, headers=headers | {"Accept-Language": "zh-CN"})
    assert "对账单" in chinese.text and "期末余额" in chinese.text

    csv_file = await client.get(url + "&format=csv", headers=headers)
    assert csv_file.headers["content-type"].startswith("text/csv")
    text = csv_file.content.decode("utf-8-sig")
    assert "Closing balance,0.00,128.00" in text
    assert text.count("order:1") == 5  # November's postings (a release has two), no others

    pdf_file = await client.get(url + "&format=pdf", headers=headers)
    assert pdf_file.content.startswith(b"%PDF")
    words = "".join(
        page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf_file.content)).pages
    )
    assert "2026-11" in words and "128.00" in words and "-12.00" in words

    stranger = await make_user("merchant")
    assert (await client.get(url, headers=stranger.headers)).status_code in (403, 404)
    api = f"/api/v1/shops/{market.shop_id}/earnings"
    assert (await client.get(api, headers=stranger.headers)).status_code in (403, 404)
    assert (await client.get(url + "&format=csv", headers=stranger.headers)).status_code in (
        403,
        404,
    )
    assert (await client.get(url.replace("2026-11", "2026-13"), headers=headers)).status_code == 422


async def test_an_anchor_s_statement_is_their_own(app, client, make_user, db: AsyncSession) -> None:
    anchor = await make_user("anchor")
    url = "/anchor/statement?month=2026-11"
    assert (await client.get(url, headers=anchor.headers)).status_code == 403  # not an anchor yet
    user = await accounts.get(db, user_id=anchor.id)
    assert user is not None
    await accounts.grant_role(db, user=user, role=Role.ANCHOR)
    await db.commit()
    await a_month_of(app, f"anchor__{anchor.id}")
    await a_month_of(app, "anchor__999999")  # another anchor's: not in this one's statement

    for language, words in (("en", "Commission statement"), ("zh-CN", "佣金对账单")):
        page = await client.get(url, headers=anchor.headers | {"Accept-Language": language})
        assert page.status_code == 200 and words in page.text and "¥128.00" in page.text
    text = (await client.get(url + "&format=csv", headers=anchor.headers)).content.decode(
        "utf-8-sig"
    )
    assert text.count("order:1") == 5
    pdf_file = await client.get(url + "&format=pdf", headers=anchor.headers)
    assert pdf_file.content.startswith(b"%PDF")


async def test_the_reconciliation_adds_up_after_captures_refunds_releases_and_payouts(
    app, client, network: Network, make_user, make_operator, db: AsyncSession
) -> None:
    operator, anchor, buyer = (
        await make_operator(),
        await make_user("anchor"),
        await make_user("buyer"),
    )
    await sold_by_anchor(network, db, anchor)
    shop = network.market.shop_id
    released = await network.paid_order(buyer, quantity=3)
    early = await network.paid_order(buyer)
    assert (await settle(app)).captured == 2
    await refund(network, early, 500)  # before release: out of pending
    await delivered(network, released, buyer)
    confirmed = await network.market.client.post(
        f"/api/v1/orders/{released['id']}/confirm-receipt", headers=buyer.headers
    )
    assert confirmed.status_code == 200
    done = await settle(app, days=8)
    assert (done.refunded, done.released) == (1, 1)
    await refund(network, released, 1_990)  # after release: out of available
    assert (await settle(app, days=8)).refunded == 1
    assert (await pay(client, operator, f"shop:{shop}:available", 1_000)).status_code == 201
    assert (await pay(client, operator, f"anchor:{anchor.id}:available", 113)).status_code == 201
    assert await deliver(app) == 2  # the shop's paid, the anchor's (….13) failed

    start, end = Month.of(utcnow()), Month.of(utcnow() + dt.timedelta(days=9))
    months, month = [], start
    while month <= end:
        answer = await client.get(
            f"/api/v1/ledger/reconciliation?month={month}", headers=operator.headers
        )
        assert answer.status_code == 200, answer.text
        months.append(answer.json())
        month = month.next
    assert all(m["adds_up"] and m["difference_fen"] == 0 for m in months), months
    total = {
        k: sum(m[k] for m in months)
        for k in ("payments_in_fen", "refunds_fen", "payouts_fen", "failed_payouts_fen")
    }
    assert total == {
        "payments_in_fen": 4 * 1990,
        "refunds_fen": 2_490,
        "payouts_fen": 1_113,
        "failed_payouts_fen": 113,
    }
    last = months[-1]
    assert last["closing_held_fen"] == 4 * 1990 - 2_490 - 1_000
    assert (last["money_in_to_date_fen"], last["paid_out_to_date_fen"]) == (4 * 1990 - 2_490, 1_000)

    for language, words in (("en", "It adds up, to the fen."), ("zh-CN", "分毫不差")):
        page = await client.get(
            f"/operator/ledger/reconciliation?month={start}",
            headers=operator.headers | {"Accept-Language": language},
        )
        assert page.status_code == 200 and words in page.text, page.text
    book = await client.get(
        f"/operator/ledger?account=shop:{shop}:available", headers=operator.headers
    )
    assert (
        book.status_code == 200
        and f"shop:{shop}:available" in book.text
        and 'id="entries"' in book.text
    )
    chinese = await client.get(
        "/operator/ledger", headers=operator.headers | {"Accept-Language": "zh-CN"}
    )
    assert chinese.status_code == 200 and "账本" in chinese.text
    for url in (
        "/operator/ledger",
        "/operator/ledger/reconciliation",
        "/api/v1/ledger/reconciliation",
    ):
        assert (await client.get(url, headers=buyer.headers)).status_code == 403
