"""Random entries posted in random batches: after every batch the book balances."""

from collections import defaultdict
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from originlive.ledger import service
from originlive.ledger.models import EntryKind
from originlive.ledger.service import Entry, Leg
from tests.ledger.conftest import NOW

ACCOUNTS = (
    "clearing:payments",
    "platform:fees",
    "shop:1:pending",
    "shop:1:available",
    "shop:12:pending",
    "anchor:7:pending",
    "station:3:fees",
    "coop:4:share",
    "payouts:sandbox",
)
moments = st.integers(-3 * 24 * 60, 3 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m))
amounts = st.integers(-(10**9), 10**9).filter(bool)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    """An entry of 1-5 legs summing to zero; keys from a small set, so that some come again."""
    legs = [
        Leg(draw(st.sampled_from(ACCOUNTS)), draw(amounts)) for _ in range(draw(st.integers(1, 4)))
    ]
    total = sum(leg.amount_fen for leg in legs)
    if total:
        legs.append(Leg(draw(st.sampled_from(ACCOUNTS)), -total))
    key = f"key-{draw(st.integers(0, 30))}"
    return Entry(EntryKind.ADJUSTMENT, "test", key, tuple(legs), draw(moments))


def _check(conn: Connection, posted: dict[str, Entry], moment: datetime) -> None:
    report = service.verify(conn)
    assert report.ok, report.lines()
    assert report.entries == len(posted)
    expected: dict[str, int] = defaultdict(int)
    before: dict[str, int] = defaultdict(int)
    for entry in posted.values():
        for leg in entry.legs:
            expected[leg.account] += leg.amount_fen
            if entry.at <= moment:
                before[leg.account] += leg.amount_fen
    found = service.balances(conn, prefix="")
    assert sum(found.values()) == 0
    assert {a: b for a, b in found.items() if b} == {a: b for a, b in expected.items() if b}
    summed: dict[str, int] = dict(
        conn.execute(text("SELECT account, sum(amount_fen) FROM postings GROUP BY account")).all()
    )
    for account in ACCOUNTS:
        assert service.balance(conn, account) == expected[account] == summed.get(account, 0)
    as_of = service.balances(conn, accounts=ACCOUNTS, as_of=moment)
    assert as_of == {account: before[account] for account in ACCOUNTS}


async def test_every_batch_leaves_the_book_balanced(book: AsyncConnection) -> None:
    @settings(max_examples=25, deadline=None)
    @given(
        batches=st.lists(st.lists(entries(), min_size=1, max_size=8), min_size=1, max_size=5),
        moment=moments,
    )
    def property(conn: Connection, batches: list[list[Entry]], moment: datetime) -> None:
        posted: dict[str, Entry] = {}
        savepoint = conn.begin_nested()
        try:
            for batch in batches:
                results = service.post(conn, batch)
                for entry, result in zip(batch, results, strict=True):
                    assert result.new == (entry.key not in posted)
                    posted.setdefault(entry.key, entry)
                _check(conn, posted, moment)
        finally:
            savepoint.rollback()

    await book.run_sync(lambda conn: property(conn))
