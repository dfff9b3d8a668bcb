"""Payouts on both databases: made from available money only, one at a time per account,
answered by the sandbox bank's signed webhooks (once), a failed one giving the money back, and
runs that pay every account at or above the minimum and never one at or below zero."""

import asyncio
import datetime as dt
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from originlive import cli
from originlive.accounts import service as accounts
from originlive.accounts.models import Role
from originlive.db import utcnow
from originlive.ledger import service as ledger
from originlive.ledger.models import EntryKind, JournalEntry
from originlive.ledger.payouts import sandbox
from originlive.ledger.payouts import service as payouts
from originlive.ledger.payouts.models import Payout, PayoutEvent
from originlive.payments.sandbox import SIGNATURE_HEADER, sign
from originlive.settings import get_settings
from tests.conftest import Actor
from tests.ledger.test_database import _committed, embedded  # noqa: F401 (a fixture)
from tests.orders.conftest import Market

PAYOUTS = "/api/v1/payouts"
WEEK = dt.timedelta(days=7)


async def earn(app: Any, account: str, fen: int, *, at: dt.datetime | None = None) -> None:
    """Money in, straight to the account (as a capture released would leave it)."""
    key = f"test:{account}:{fen}:{time.monotonic_ns()}"
    legs = (ledger.Leg("clearing:payments", -fen), ledger.Leg(account, fen))
    entry = ledger.Entry(EntryKind.CAPTURE, "test", key, legs, at or utcnow())
    await app.state.order_writer.run(ledger.post, entries=[entry])


async def held(app: Any, *names: str) -> list[int]:
    async with app.state.engine.connect() as conn:
        found = await conn.run_sync(lambda c: ledger.balances(c, accounts=list(names)))
    return [found[name] for name in names]


async def count(app: Any, table: Any) -> int:
    async with app.state.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def verified(app: Any) -> None:
    async with app.state.engine.connect() as conn:
        report = await conn.run_sync(ledger.verify)
    assert report.ok, report.lines()


async def deliver(app: Any) -> int:
    """Run the sandbox bank's courier once, posting to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await sandbox.deliver_due(
            app.state.engine,
            client,
            url=sandbox.WEBHOOK_PATH,
            secret=app.state.payout_secret,
        )


async def pay(
    client: httpx.AsyncClient, operator: Actor, account: str, fen: int, key: str | None = None
) -> httpx.Response:
    headers = operator.headers | ({"Idempotency-Key": key} if key else {})
    return await client.post(PAYOUTS, json={"account": account, "amount_fen": fen}, headers=headers)


async def test_a_payout_above_what_is_available_is_a_422_and_writes_nothing(
    app, client, market: Market, make_operator
) -> None:
    operator = await make_operator()
    shop = f"shop:{market.shop_id}:available"
    await earn(app, shop, 15_000)
    entries = await count(app, JournalEntry)

    for account, fen in (
        (shop, 15_001),
        (f"shop:{market.shop_id}:pending", 100),  # pending money is not paid out
        ("platform:available", 100),
        ("anchor:99:available", 1),  # nothing there
        ("shop:x:available", 1),
    ):
        refused = await pay(client, operator, account, fen)
        assert refused.status_code == 422, (account, refused.text)
    assert (await pay(client, operator, shop, 0)).status_code == 422
    assert await count(app, Payout) == 0 and await count(app, PayoutEvent) == 0
    assert await count(app, JournalEntry) == entries
    assert await held(app, shop) == [15_000]

    # Only operators make payouts.
    assert (await pay(client, market.merchant, shop, 100)).status_code == 403
    assert (await client.get(PAYOUTS, headers=market.merchant.headers)).status_code == 403


async def test_two_payouts_of_one_account_at_once_exactly_one_wins(
    app, client, market: Market, make_operator
) -> None:
    operator = await make_operator()
    shop = f"shop:{market.shop_id}:available"
    await earn(app, shop, 15_000)
    answers = await asyncio.gather(
        pay(client, operator, shop, 10_000, key="a"), pay(client, operator, shop, 10_000, key="b")
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert await held(app, shop, "payouts:sandbox") == [5_000, 10_000]
    assert await count(app, Payout) == 1
    await verified(app)

    # The same key and body again is the first payout; another body under it is a 422.
    won = answers[0] if answers[0].status_code == 201 else answers[1]
    key = "a" if won is answers[0] else "b"
    again = await pay(client, operator, shop, 10_000, key=key)
    assert again.status_code == 201 and again.json()["id"] == won.json()["id"]
    assert (await pay(client, operator, shop, 9_000, key=key)).status_code == 422
    assert await count(app, Payout) == 1


async def test_a_failed_payout_puts_the_money_back_and_a_paid_one_stays_paid(
    app, client, market: Market, make_operator
) -> None:
    operator = await make_operator()
    shop = f"shop:{market.shop_id}:available"
    await earn(app, shop, 30_013)
    failing = await pay(client, operator, shop, 10_013)  # the sandbox refuses ….13
    assert failing.status_code == 201, failing.text
    assert failing.json()["status"] == "requested" and failing.json()["provider_ref"]
    assert await held(app, shop) == [20_000]

    assert await deliver(app) == 1
    assert await deliver(app) == 0  # answered: nothing more to send
    listed = (await client.get(PAYOUTS, headers=operator.headers)).json()
    assert [(p["status"], p["amount_fen"]) for p in listed] == [("failed", 10_013)]
    assert await held(app, shop, "payouts:sandbox") == [30_013, 0]

    paid = await pay(client, operator, shop, 30_000)
    assert paid.status_code == 201, paid.text
    assert await deliver(app) == 1
    found = (await client.get(f"{PAYOUTS}?status=paid", headers=operator.headers)).json()
    assert [p["id"] for p in found] == [paid.json()["id"]] and found[0]["settled_at"]
    assert await held(app, shop, "payouts:sandbox") == [13, 30_000]
    await verified(app)


def _signed(app: Any, event: sandbox.Event, *, secret: bytes | None = None) -> dict[str, Any]:
    body = sandbox.payload(event)
    signature = sign(secret or app.state.payout_secret, body, int(time.time()))
    return {"content": body, "headers": {SIGNATURE_HEADER: signature}}


async def test_a_webhook_delivered_twice_applies_once_and_a_bad_signature_writes_nothing(
    app, client, market: Market, make_operator
) -> None:
    operator = await make_operator()
    shop = f"shop:{market.shop_id}:available"
    await earn(app, shop, 20_000)
    made = (await pay(client, operator, shop, 20_000)).json()
    url = sandbox.WEBHOOK_PATH
    failed = sandbox.Event(
        id="evt-1", type="payout.failed", payout_id=made["id"], amount_fen=20_000, currency="CNY"
    )
    forged = await client.post(url, **_signed(app, failed, secret=b"not the bank"))
    assert forged.status_code == 401
    unsigned = await client.post(url, content=sandbox.payload(failed))
    assert unsigned.status_code == 401
    assert await count(app, PayoutEvent) == 1 and await held(app, shop) == [0]

    first = await client.post(url, **_signed(app, failed))
    second = await client.post(url, **_signed(app, failed))
    assert (first.json(), second.json()) == ({"result": "failed"}, {"result": "duplicate"})
    paid = failed.model_copy(update={"id": "evt-2", "type": "payout.paid"})
    assert (await client.post(url, **_signed(app, paid))).json() == {"result": "duplicate"}
    assert await held(app, shop) == [20_000]  # given back once
    assert await count(app, PayoutEvent) == 2  # requested, failed

    other = failed.model_copy(update={"payout_id": made["id"] + 1})
    assert (await client.post(url, **_signed(app, other))).status_code == 404
    wrong = failed.model_copy(update={"amount_fen": 1})
    assert (await client.post(url, **_signed(app, wrong))).status_code == 422
    assert (await client.post("/api/v1/payouts/bank/webhook")).status_code == 404
    await verified(app)


async def test_a_run_pays_every_account_at_the_minimum_once_a_period_and_never_a_negative(
    app, market: Market
) -> None:
    shop = f"shop:{market.shop_id}:available"
    await earn(app, shop, 12_000)
    await earn(app, "coop:5:available", 10_000)  # exactly the minimum
    await earn(app, "anchor:7:available", 9_999)  # short of it
    await earn(app, "station:3:available", 20_000)
    await earn(app, "platform:available", 50_000)  # the platform's own: never paid out
    # A refund after release took more than the station held: it is below zero.
    late = ledger.Entry(
        EntryKind.REFUND,
        "order:1",
        "refund:late",
        (ledger.Leg("station:3:available", -20_500), ledger.Leg("clearing:payments", 20_500)),
        utcnow(),
    )
    await app.state.order_writer.run(ledger.post, entries=[late])
    writer, provider = app.state.order_writer, app.state.payout_provider
    now = utcnow()

    done = await payouts.run(writer, provider, minimum_fen=10_000, interval=WEEK, now=now)
    assert (done.paid, done.fen) == (2, 22_000)
    names = (shop, "coop:5:available", "anchor:7:available", "station:3:available")
    assert await held(app, *names) == [0, 0, 9_999, -500]

    # Money back from a failed payout is not paid again in the same period...
    assert await deliver(app) == 2
    await earn(app, "anchor:7:available", 1)
    done = await payouts.run(writer, provider, minimum_fen=10_000, interval=WEEK, now=now)
    assert (done.paid, done.fen) == (1, 10_000)  # the anchor, at the minimum now
    again = await payouts.run(writer, provider, minimum_fen=10_000, interval=WEEK, now=now)
    assert again.paid == 0
    # ...and the next period pays what is due then; the station stays below zero, unpaid.
    await earn(app, shop, 10_013)  # the sandbox refuses it: back in available
    later = await payouts.run(writer, provider, minimum_fen=1, interval=WEEK, now=now + WEEK)
    assert later.paid == 1
    assert await deliver(app) == 2
    assert await held(app, shop, "station:3:available") == [10_013, -500]
    failed_again = await payouts.run(writer, provider, minimum_fen=1, interval=WEEK, now=now + WEEK)
    assert failed_again.paid == 0  # no loop: the failed payout waits for the next period
    async with app.state.engine.connect() as conn:
        station = await conn.execute(select(Payout).where(Payout.account.like("station:%")))
        assert station.all() == []
    await verified(app)


async def test_earnings_are_the_shop_s_managers_and_the_anchor_s_own(
    app, client, market: Market, make_user, make_operator, db
) -> None:
    operator = await make_operator()
    shop = market.shop_id
    await earn(app, f"shop:{shop}:pending", 3_000)
    await earn(app, f"shop:{shop}:available", 25_000)
    assert (await pay(client, operator, f"shop:{shop}:available", 20_000)).status_code == 201
    url = f"/api/v1/shops/{shop}/earnings"

    mine = await client.get(url, headers=market.merchant.headers)
    assert mine.status_code == 200, mine.text
    figures = mine.json()
    assert (figures["pending_fen"], figures["available_fen"]) == (3_000, 5_000)
    assert (figures["under_way_fen"], figures["paid_out_fen"]) == (20_000, 0)
    assert [line["kind"] for line in figures["recent"]] == ["payout", "capture", "capture"]
    await deliver(app)
    paid = (await client.get(url, headers=operator.headers)).json()
    assert (paid["under_way_fen"], paid["paid_out_fen"]) == (0, 20_000)

    stranger = await make_user("merchant")
    assert (await client.get(url, headers=stranger.headers)).status_code in (403, 404)
    assert (await client.get(url)).status_code == 401

    anchor = await make_user("anchor")
    me = "/api/v1/anchors/me/earnings"
    assert (await client.get(me, headers=anchor.headers)).status_code == 403  # not one yet
    user = await accounts.get(db, user_id=anchor.id)
    assert user is not None
    await accounts.grant_role(db, user=user, role=Role.ANCHOR)
    await db.commit()
    await earn(app, f"anchor:{anchor.id}:available", 700)
    own = await client.get(me, headers=anchor.headers)
    assert own.status_code == 200 and own.json()["available_fen"] == 700


@pytest.mark.usefixtures("embedded")
def test_the_payouts_command_pays_once_a_period(capsys: pytest.CaptureFixture[str]) -> None:
    legs = (
        ledger.Leg("clearing:payments", -15_500),
        ledger.Leg("shop:1:available", 15_000),
        ledger.Leg("anchor:2:available", 500),  # below the minimum
    )
    entry = ledger.Entry(EntryKind.RELEASE, "order:1", "release:1", legs, utcnow())
    url = get_settings().resolved_database_url
    asyncio.run(_committed(url, lambda conn: conn.run_sync(ledger.post, [entry])))
    cli.main(["ledger", "payouts"])
    cli.main(["ledger", "payouts"])
    assert capsys.readouterr().out.splitlines() == [
        "1 payouts made (15000 fen), 0 accounts left for later",
        "0 payouts made (0 fen), 0 accounts left for later",
    ]
    cli.main(["ledger", "verify"])
    assert "CNY: in 15500 fen = held 500 + paid out 15000" in capsys.readouterr().out
