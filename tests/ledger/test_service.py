"""Posting, reversing and balances, on SQLite and PostgreSQL."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from originlive.errors import InvalidInput, NotFound
from originlive.ledger import service
from originlive.ledger.models import EntryKind
from originlive.ledger.service import Entry, Leg, Posted
from tests.ledger.conftest import NOW, sale


async def test_a_balanced_entry_is_posted_with_its_legs(book: AsyncConnection) -> None:
    [posted] = await book.run_sync(service.post, [sale("a", 1000)])
    assert posted.new
    legs = await book.execute(
        text("SELECT account, amount_fen FROM postings WHERE entry_id = :id ORDER BY account"),
        {"id": posted.entry_id},
    )
    assert legs.all() == [
        ("clearing:payments", -1000),
        ("platform:fees", 50),
        ("shop:1:pending", 950),
    ]
    assert await book.run_sync(service.balance, "shop:1:pending") == 950
    assert await book.run_sync(service.balance, "clearing:payments") == -1000


@pytest.mark.parametrize(
    ("legs", "error"),
    [
        ((Leg("clearing:payments", -1000), Leg("shop:1:pending", 999)), service.Unbalanced),
        ((), service.Unbalanced),
        ((Leg("clearing:payments", 0), Leg("shop:1:pending", 0)), InvalidInput),
        ((Leg("clearing:payments", -5), Leg("shop:x:pending", 5)), InvalidInput),
        ((Leg("clearing:payments", -5), Leg("bank:1:pending", 5)), InvalidInput),
    ],
)
async def test_a_wrong_entry_refuses_the_batch(
    book: AsyncConnection, legs: tuple[Leg, ...], error: type[Exception]
) -> None:
    wrong = Entry(EntryKind.ADJUSTMENT, "fix", "wrong", legs, NOW)
    with pytest.raises(error):
        await book.run_sync(service.post, [sale("a"), wrong])
    count = await book.execute(text("SELECT count(*) FROM journal_entries"))
    assert count.scalar_one() == 0  # nothing of the batch


async def test_an_entry_is_posted_once_by_its_key(book: AsyncConnection) -> None:
    first = await book.run_sync(service.post, [sale("a"), sale("b"), sale("a")])
    assert [p.new for p in first] == [True, True, False]
    assert first[0].entry_id == first[2].entry_id
    again = await book.run_sync(service.post, [sale("b"), sale("c")])
    assert again[0] == Posted(first[1].entry_id, False)
    assert again[1].new
    assert await book.run_sync(service.balance, "shop:1:pending") == 3 * 950


async def test_an_entry_is_reversed_once(book: AsyncConnection) -> None:
    [posted] = await book.run_sync(service.post, [sale("a", 1000)])
    reversal = await book.run_sync(
        lambda c: service.reverse(c, posted.entry_id, key="refund:a", at=NOW)
    )
    assert reversal.new
    retried = await book.run_sync(
        lambda c: service.reverse(c, posted.entry_id, key="refund:a", at=NOW)
    )
    assert retried == Posted(reversal.entry_id, False)
    with pytest.raises(service.AlreadyReversed):
        await book.run_sync(lambda c: service.reverse(c, posted.entry_id, key="other", at=NOW))
    mirrored = Entry(
        EntryKind.REVERSAL, "x", "by hand", sale("a").legs, NOW, reverses_id=posted.entry_id
    )
    with pytest.raises(service.AlreadyReversed):
        await book.run_sync(service.post, [mirrored])
    found = await book.run_sync(
        service.balances, accounts=["clearing:payments", "shop:1:pending", "platform:fees"]
    )
    assert found == {"clearing:payments": 0, "shop:1:pending": 0, "platform:fees": 0}
    row = await book.execute(
        text("SELECT kind, ref, reverses_id FROM journal_entries WHERE id = :id"),
        {"id": reversal.entry_id},
    )
    assert tuple(row.one()) == ("reversal", "order:a", posted.entry_id)
    assert (await book.run_sync(service.verify)).ok


async def test_a_batch_reversing_an_entry_twice_is_refused(book: AsyncConnection) -> None:
    [posted] = await book.run_sync(service.post, [sale("a")])
    twice = [
        service.mirror(posted.entry_id, sale("a").legs, key=key, ref="r", at=NOW, currency="CNY")
        for key in ("first", "second")
    ]
    with pytest.raises(service.AlreadyReversed):
        await book.run_sync(service.post, twice)
    assert (await book.run_sync(service.post, twice[:1]))[0].new


async def test_reversing_what_is_not_there(book: AsyncConnection) -> None:
    with pytest.raises(NotFound):
        await book.run_sync(lambda c: service.reverse(c, 12345, key="r", at=NOW))


async def test_balances_as_of_a_moment(book: AsyncConnection) -> None:
    day = timedelta(days=1)
    entries = [
        sale("old", 100, at=NOW - 3 * day),
        sale("morning", 200, at=NOW - timedelta(hours=2)),
        sale("noon", 400, at=NOW),
        sale("later", 800, at=NOW + timedelta(hours=1)),
        sale("other shop", 1600, shop=2, at=NOW),
    ]
    await book.run_sync(service.post, entries)

    async def as_of(moment: datetime) -> int:
        return int(await book.run_sync(service.balance, "clearing:payments", as_of=moment))

    assert await as_of(NOW - 4 * day) == 0
    assert await as_of(NOW - 3 * day) == -100
    assert await as_of(NOW - timedelta(hours=2, microseconds=1)) == -100
    assert await as_of(NOW - timedelta(hours=1, minutes=30)) == -300  # in the morning's hour
    assert await as_of(NOW - timedelta(microseconds=1)) == -300
    assert await as_of(NOW) == -2300  # a posting at the moment counts
    assert await as_of(NOW + timedelta(minutes=59)) == -2300
    assert await as_of(NOW + timedelta(hours=1)) == -3100
    assert await as_of(NOW + day) == -3100
    assert await book.run_sync(service.balance, "clearing:payments") == -3100
    shops = await book.run_sync(lambda c: service.balances(c, prefix="shop:", as_of=NOW))
    assert shops == {"shop:1:pending": 100 + 200 + 400 - 3 * 50, "shop:2:pending": 1600 - 50}
    assert await book.run_sync(lambda c: service.balances(c, prefix="shop:2:")) == {
        "shop:2:pending": 1550
    }


async def test_an_account_of_another_currency_is_apart(book: AsyncConnection) -> None:
    usd = Entry(
        EntryKind.CAPTURE,
        "order:9",
        "usd",
        (Leg("clearing:payments", -7), Leg("shop:1:pending", 7)),
        NOW,
        currency="USD",
    )
    await book.run_sync(service.post, [usd, sale("cny", 100)])
    assert await book.run_sync(service.balance, "shop:1:pending") == 50
    assert await book.run_sync(lambda c: service.balance(c, "shop:1:pending", currency="USD")) == 7
    assert (await book.run_sync(service.verify)).ok
