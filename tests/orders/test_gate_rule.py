"""The Redis gate's script is an early copy of ``placing.take`` for offers: the same answers.

Hypothesis draws offers (units left, limit, open or ended) and buyers' counts, loads them into
Redis as the gate keeps them, and presses them with orders of one or more offer lines. After
each press the script's verdict must be the rule's: accepted, or refused for the same reason
(for an order of one line; an order of several is refused by both, perhaps for the first of
two reasons). Both then hold the same units and counts.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from originlive.errors import OriginliveError
from originlive.orders import gate, placing

pytestmark = pytest.mark.redis

NOW = datetime(2026, 12, 1, tzinfo=UTC)
# An offer's end as the gate keeps it (ms; 0: none), far enough from Redis's clock that the
# test never races it: none, long past, or far ahead.
ENDS = {"none": 0, "past": 1_000, "ahead": 4_102_444_800_000}
VERDICT = {"ended": placing.OfferEnded, "limit": placing.OverLimit, "soldout": placing.SoldOut}

offers_st = st.lists(
    st.tuples(
        st.integers(0, 6),  # units left
        st.integers(1, 3),  # per-buyer limit
        st.booleans(),  # active
        st.sampled_from(sorted(ENDS)),
    ),
    min_size=1,
    max_size=3,
)
presses_st = st.lists(
    st.tuples(
        st.integers(0, 3),  # buyer
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offers=offers_st, held=st.dictionaries(st.integers(0, 3), st.integers(0, 2)), presses=presses_st
)
def test_the_script_answers_as_the_rule(
    client: redis.Redis,
    offers: list[tuple[int, int, bool, str]],
    held: dict[int, int],
    presses: list[tuple[int, list[tuple[int, int]]]],
) -> None:
    client.flushdb()
    script = client.register_script(gate._RESERVE)
    terms, units = placing.Terms(), placing.Units()
    for offer_id, (left, limit, active, ends) in enumerate(offers, start=1):
        base = f"t:offer:{offer_id}"
        client.hset(base, mapping={"remaining": left, "limit": limit, "ends": ENDS[ends]})
        client.hset(base, "active", int(active))
        on_sale = active and ends != "past"
        terms.offers[offer_id] = placing.OfferTerms(offer_id, 1, "桃", 990, "CNY", limit, on_sale)
        units.remaining[offer_id], units.open[offer_id] = left, on_sale
        for buyer, count in held.items():
            client.hset(base + ":buyers", str(buyer), count)
            units.held[offer_id, buyer] = count
    terms.paths["610431"] = "61/6104/610431"

    for n, (buyer, wanted) in enumerate(presses):
        lines = {offer % len(offers) + 1: q for offer, q in wanted}  # distinct offers
        cmd = placing.PlaceOrder(
            buyer,
            f"k{n}",
            tuple(placing.Line(offer_id, None, q) for offer_id, q in sorted(lines.items())),
            placing.Address("买家", "13800000000", "610431", "徐杨村"),
            NOW,
            timedelta(minutes=15),
        )
        keys = [
            f"t:offer:{offer_id}{part}"
            for offer_id in sorted(lines)
            for part in ("", ":buyers", ":pending", ":keys")
        ]
        answer = script(
            keys=keys, args=[buyer, f"{buyer}:k{n}", f"t{n}", *(lines[o] for o in sorted(lines))]
        )
        verdict = answer[0]
        outcomes: list[placing.Outcome | None] = [None]
        placing.decide([cmd], outcomes, terms, units)
        refusal = outcomes[0]
        if verdict == "ok":
            assert refusal is None, (cmd, refusal)
        else:
            assert isinstance(refusal, OriginliveError), (cmd, verdict)
            if len(lines) == 1:
                assert isinstance(refusal, VERDICT[verdict]), (cmd, verdict, refusal)

    for offer_id in range(1, len(offers) + 1):
        base = f"t:offer:{offer_id}"
        assert int(client.hget(base, "remaining")) == units.remaining[offer_id]
        for buyer in range(4):
            counted = int(client.hget(base + ":buyers", str(buyer)) or 0)
            assert counted == units.held.get((offer_id, buyer), 0)
