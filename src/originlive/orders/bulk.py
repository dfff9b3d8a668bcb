"""Placing orders in batches: many orders per transaction, a few statements per batch.

When an anchor pins an offer, the orders of one moment all want the same offer row. Placed one
by one, each costs its own statements: on PostgreSQL a statement is a round trip to the server
(about 270 us, measured with asyncpg on loopback) and one transaction per order gave about 260
orders a second; on SQLite about ten statements an order kept the writer at a few thousand.
So ``place_many`` decides the orders that arrive together with a few statements for the whole
batch, one after another in Python exactly as ``stock.place`` would decide each in turn (the
same checks, the same errors; a hypothesis test compares them on both databases).

On PostgreSQL (``BulkPlacer``: each process sends its orders in batches), five round trips:

1. keys already used (replays) in one select; prices, shipping regions and rates in three;
2. each new order's key is claimed (``INSERT ... ON CONFLICT DO NOTHING``): a key taken
   meanwhile by another process makes that order a replay, before any unit moves;
3. the offers, then the SKUs, are locked in id order (``FOR UPDATE``), then the counters of
   the batch's buyers on those offers; every rule takes its locks in that order
   (``stock.release`` and ``stock.end_offer`` too), so batches of different processes queue
   at the offer rows instead of deadlocking;
4. the orders are decided against those locked figures;
5. units, counters, items and events are written with one statement each; refused orders'
   claimed rows are deleted. The database's CHECK (remaining >= 0) stays as a backstop.

The bulk placer tries each batch first without step 3's locks (``locked=False``): the batches
of two processes then overlap instead of queueing from claim to commit, and step 5 moves units
and counts only where the figures it decided on still hold; if one does not (``Contended``),
the batch rolls back and runs again locked. With the Redis gate in front that is rare.

On SQLite (``WriterPlacer``: the jobs of the order writer's round) the writer already holds
the write lock, so the batch reads the figures, decides, and writes each table with one
``executemany``.

The answers reach their callers only after the commit (invariant 6).
"""

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from originlive import rawsql
from originlive.batching import INDEX_PLANS, Batched, BatchWriter, Gatherer, answer
from originlive.errors import InvalidInput, OriginliveError
from originlive.orders import stock
from originlive.orders.models import OrderStatus

log = logging.getLogger(__name__)

PENDING = OrderStatus.PENDING_PAYMENT.value


class OrderPlacer(Protocol):
    async def place(self, cmd: stock.PlaceOrder) -> stock.Placed: ...

    async def close(self) -> None: ...


class WriterPlacer:
    """Each order a job of SQLite's order writer, which decides the orders that wait
    together with one call of ``place_many`` (``stock.place`` each, if that fails)."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    async def place(self, cmd: stock.PlaceOrder) -> stock.Placed:
        return await self._writer.run_batched(PLACE, cmd)

    async def close(self) -> None:
        return None


class AnnouncingPlacer:
    """A placer that tells a listener of each new order once it is committed (the live rooms
    show purchases); a listener's failure never fails the order."""

    def __init__(self, placer: OrderPlacer, listener: Callable[[stock.Placed], None]) -> None:
        self._placer = placer
        self._listener = listener

    async def place(self, cmd: stock.PlaceOrder) -> stock.Placed:
        placed = await self._placer.place(cmd)
        try:
            self._listener(placed)
        except Exception:
            log.exception("telling of a placed order failed")
        return placed

    async def close(self) -> None:
        await self._placer.close()


@dataclass
class _Candidate:
    index: int
    cmd: stock.PlaceOrder
    priced: list[stock._Priced]
    shop_id: int
    currency: str
    shipping: int
    order_id: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)


class Contended(Exception):
    """The figures an unlocked batch decided on moved before it wrote them (another process's
    batch, a release, an end): roll it back and place it again with the rows locked."""


def place_many(
    conn: Connection, cmds: Sequence[stock.PlaceOrder], *, locked: bool = True
) -> list[stock.Placed | OriginliveError]:
    """Decide and record these orders in the caller's transaction, as ``stock.place`` would
    one after another; returns each one's answer or refusal. (On PostgreSQL keys must be
    distinct; the bulk placer sends a key's second press in a later batch.)

    On PostgreSQL, ``locked=False`` decides on figures read without locking the offers and
    writes with conditions that hold only if they have not moved, else raises ``Contended``
    (see ``_decide``).
    """
    if conn.dialect.name == "sqlite":
        return _place_many_embedded(conn, cmds)
    results: list[stock.Placed | OriginliveError | None] = [None] * len(cmds)
    hashes = [cmd.request_hash for cmd in cmds]
    now = max(cmd.now for cmd in cmds)
    offer_ids = sorted({ln.offer_id for c in cmds for ln in c.lines if ln.offer_id})
    sku_ids = sorted({ln.sku_id for c in cmds for ln in c.lines if ln.sku_id})

    # 1. Replays and the figures that do not move: prices, regions, rates. One round trip.
    replays, offer_rows, sku_rows, region_rows, rate_rows = _json_row(
        conn,
        # A lookup per key (LATERAL) by the unique index, whatever the planner's statistics
        # say of a table that grows by thousands of rows a second.
        "SELECT (SELECT json_agg(json_build_array(o.buyer_id, o.idempotency_key, o.id,"
        " o.request_hash)) FROM unnest(CAST(:buyers AS INTEGER[]), CAST(:keys AS TEXT[]))"
        " AS k(buyer_id, key) CROSS JOIN LATERAL (SELECT * FROM orders"
        " WHERE orders.buyer_id = k.buyer_id AND orders.idempotency_key = k.key) AS o),"
        " (SELECT json_agg(json_build_array(id, sku_id, shop_id, title, price_cents, currency,"
        f" per_buyer_limit, {stock.OFFER_ON_SALE})) FROM flash_offers"
        " WHERE id = ANY(:offer_ids)),"
        " (SELECT json_agg(json_build_array(skus.id, skus.name, skus.price_cents,"
        " skus.currency, products.title, products.shop_id)) FROM skus"
        " JOIN products ON products.id = skus.product_id"
        " JOIN shops ON shops.id = products.shop_id WHERE skus.id = ANY(:sku_ids)"
        f" AND {stock.SKU_ON_SALE}),"
        " (SELECT json_agg(json_build_array(code, path)) FROM regions"
        " WHERE code = ANY(:codes)),"
        " (SELECT json_agg(json_build_array(shop_id, region_code, fee_cents))"
        " FROM shipping_rates WHERE shop_id IN (SELECT shop_id FROM flash_offers"
        " WHERE id = ANY(:offer_ids) UNION SELECT products.shop_id FROM skus"
        " JOIN products ON products.id = skus.product_id WHERE skus.id = ANY(:sku_ids)))",
        buyers=[c.buyer_id for c in cmds],
        keys=[c.idempotency_key for c in cmds],
        **stock.sale_params(now),
        offer_ids=offer_ids,
        sku_ids=sku_ids,
        codes=sorted({c.address.region_code for c in cmds}),
    )
    index = {(c.buyer_id, c.idempotency_key): i for i, c in enumerate(cmds)}
    for buyer, key, order_id, request_hash in replays:
        i = index[buyer, key]
        results[i] = _replayed(conn, order_id, request_hash == hashes[i])
    offers = {row[0]: row[1:] for row in offer_rows}
    skus = {row[0]: row[1:] for row in sku_rows}
    paths = dict(region_rows)
    rates: dict[int, list[tuple[str | None, int]]] = defaultdict(list)
    for shop_id, code, fee in rate_rows:
        rates[shop_id].append((code, fee))

    candidates = _candidates(cmds, results, offers, skus, paths, rates)
    if candidates:
        _decide(conn, candidates, results, hashes, now, locked=locked)
    return _done(results)


def _json_row(conn: Connection, sql: str, **params: Any) -> list[list[Any]]:
    """A row of ``json_agg`` columns, each as a list (empty for NULL). SQLAlchemy's asyncpg
    dialect decodes JSON itself; a driver that does not gives text."""
    row = rawsql.execute(conn, sql, **params).fetchone()
    return [json.loads(v) if isinstance(v, str | bytes) else (v or []) for v in row]


def _candidates(
    cmds: Sequence[stock.PlaceOrder],
    results: list[stock.Placed | OriginliveError | None],
    offers: dict[int, Any],
    skus: dict[int, Any],
    paths: dict[str, str],
    rates: dict[int, list[tuple[str | None, int]]],
) -> list[_Candidate]:
    """The orders not yet answered, priced; those that cannot be get their refusal."""
    candidates: list[_Candidate] = []
    for i, cmd in enumerate(cmds):
        if results[i] is None:
            try:
                candidates.append(_price(i, cmd, offers, skus, paths, rates))
            except OriginliveError as exc:
                results[i] = exc
    return candidates


def _price(
    index: int,
    cmd: stock.PlaceOrder,
    offers: dict[int, Any],
    skus: dict[int, Any],
    paths: dict[str, str],
    rates: dict[int, list[tuple[str | None, int]]],
) -> _Candidate:
    """``stock._price`` and the shipping fee, from figures read for the whole batch."""
    priced = []
    for line in cmd.lines:
        if line.offer_id is not None:
            offer = offers.get(line.offer_id)
            if offer is None:
                raise InvalidInput(f"No offer {line.offer_id}.", field="items")
            sku_id, shop_id, title, price, currency, limit, is_open = offer
            if not is_open:
                raise stock.OfferEnded(f"Offer {line.offer_id} has ended.")
            if line.quantity > limit:
                raise stock.OverLimit(f"At most {limit} per buyer.")
            priced.append(stock._Priced(line, sku_id, shop_id, title, price, currency, limit))
        else:
            assert line.sku_id is not None
            sku = skus.get(line.sku_id)
            if sku is None:
                raise InvalidInput(f"No SKU {line.sku_id} on sale.", field="items")
            name, price, currency, title, shop_id = sku
            priced.append(
                stock._Priced(line, line.sku_id, shop_id, f"{title} {name}", price, currency, None)
            )
    shops = {p.shop_id for p in priced}
    currencies = {p.currency for p in priced}
    if len(shops) != 1 or len(currencies) != 1:
        raise InvalidInput("An order holds items of one shop, in one currency.", field="items")
    shop_id = shops.pop()
    path = paths.get(cmd.address.region_code)
    if path is None:
        raise stock.unknown_region(cmd.address.region_code)
    fee = stock.shipping_fee(path, rates.get(shop_id, []))
    return _Candidate(index, cmd, priced, shop_id, currencies.pop(), fee)


def _decide(
    conn: Connection,
    candidates: list[_Candidate],
    results: list[stock.Placed | OriginliveError | None],
    hashes: list[str],
    now: Any,
    *,
    locked: bool,
) -> None:
    """Steps 2 to 5 on PostgreSQL.

    Locked, the offers' rows are taken from the claim to the commit, and a second process's
    batch waits for all of that. Unlocked (how the bulk placer tries a batch first), each
    process decides on the figures as they were read and takes the rows only with the final
    write, whose conditions (units left, the offer open, each buyer's count within the
    limit) hold only if the figures have not moved meanwhile; if one fails, ``Contended``
    rolls the batch back. With the Redis gate in front they almost never fail: it admits
    only what is left.
    """
    offer_ids = sorted({p.line.offer_id for c in candidates for p in c.priced if p.line.offer_id})
    sku_ids = sorted({p.sku_id for c in candidates for p in c.priced if p.line.offer_id is None})

    # 2. Claim each order's key, then lock the offers and the SKUs in id order (the order
    # every rule takes them in). A key taken meanwhile by another process makes its order a
    # replay, before any unit moves.
    claimed_rows, offer_rows, sku_rows = _json_row(
        conn,
        _CLAIM[locked],
        status=PENDING,
        b=[c.cmd.buyer_id for c in candidates],
        s=[c.shop_id for c in candidates],
        c=[c.currency for c in candidates],
        i=[_items_cents(c) for c in candidates],
        f=[c.shipping for c in candidates],
        n=[c.cmd.address.name for c in candidates],
        p=[c.cmd.address.phone for c in candidates],
        r=[c.cmd.address.region_code for c in candidates],
        d=[c.cmd.address.detail for c in candidates],
        k=[c.cmd.idempotency_key for c in candidates],
        h=[hashes[c.index] for c in candidates],
        t=[c.cmd.now for c in candidates],
        e=[c.cmd.now + c.cmd.ttl for c in candidates],
        **stock.sale_params(now),
        offer_ids=offer_ids,
        sku_ids=sku_ids,
    )
    claimed = {(buyer, key): order_id for order_id, buyer, key in claimed_rows}
    for c in candidates:
        c.order_id = claimed.get((c.cmd.buyer_id, c.cmd.idempotency_key), 0)
        if not c.order_id:  # taken meanwhile: its first answer, or 422 for another body
            try:
                replay = stock._replay(conn, c.cmd, hashes[c.index])
            except OriginliveError as exc:
                results[c.index] = exc
                continue
            assert replay is not None
            results[c.index] = replay
    candidates = [c for c in candidates if c.order_id]
    remaining = {offer_id: left for offer_id, left, _open in offer_rows}
    is_open = {offer_id: open_ for offer_id, _left, open_ in offer_rows}
    shelf = dict(sku_rows)
    # The buyers' counters, read now that their offers are locked (a fresh snapshot: what
    # the transactions we waited for committed is in it).
    held: dict[tuple[int, int], int] = {}
    if offer_ids and candidates:
        for offer_id, buyer, quantity in rawsql.execute(
            conn,
            _COUNTERS[locked],
            offers=offer_ids,
            buyers=sorted({c.cmd.buyer_id for c in candidates}),
        ).fetchall():
            held[offer_id, buyer] = quantity

    # 3. One after another, as stock.place would: all lines of an order, or none.
    accepted = _accept(candidates, results, remaining, is_open, shelf, held)
    refused = [c.order_id for c in candidates if results[c.index] is not None]

    # 4. Write it all down in one statement; refused orders' claimed rows go. Units, counts
    # and stock move only where the figures still allow it (always, when they were locked).
    taken_offers, taken_skus, counted = _taken(accepted)
    lines = [(c, p) for c in accepted for p in c.priced]
    item_rows, event_rows, moved = _json_row(
        conn,
        "WITH refused AS (DELETE FROM orders WHERE id = ANY(:refused)),"
        " offers AS (UPDATE flash_offers SET remaining = flash_offers.remaining - u.q"
        " FROM unnest(CAST(:offer_ids AS INTEGER[]), CAST(:offer_qs AS INTEGER[])) AS u(id, q)"
        " WHERE flash_offers.id = u.id AND flash_offers.remaining >= u.q"
        f" AND {stock.OFFER_ON_SALE} RETURNING flash_offers.id),"
        " counters AS (INSERT INTO offer_purchases (offer_id, buyer_id, quantity)"
        " SELECT * FROM unnest(CAST(:counter_offers AS INTEGER[]),"
        " CAST(:counter_buyers AS INTEGER[]), CAST(:counter_qs AS INTEGER[]))"
        " ON CONFLICT (offer_id, buyer_id) DO UPDATE"
        " SET quantity = offer_purchases.quantity + excluded.quantity"
        " WHERE offer_purchases.quantity + excluded.quantity <= (SELECT per_buyer_limit"
        " FROM flash_offers WHERE flash_offers.id = excluded.offer_id) RETURNING 1),"
        " shelf AS (UPDATE skus SET stock = skus.stock - u.q"
        " FROM unnest(CAST(:sku_ids AS INTEGER[]), CAST(:sku_qs AS INTEGER[])) AS u(id, q)"
        " WHERE skus.id = u.id AND skus.stock >= u.q RETURNING skus.id),"
        " items AS (INSERT INTO order_items (order_id, sku_id, offer_id, title,"
        " unit_price_cents, quantity) SELECT * FROM unnest(CAST(:item_orders AS INTEGER[]),"
        " CAST(:item_skus AS INTEGER[]), CAST(:item_offers AS INTEGER[]),"
        " CAST(:item_titles AS TEXT[]), CAST(:item_prices AS BIGINT[]),"
        " CAST(:item_qs AS INTEGER[])) RETURNING id, order_id, offer_id, sku_id),"
        " events AS (INSERT INTO order_events (order_id, from_status, to_status, actor_id,"
        " created_at) SELECT o, NULL, :status, a, t FROM unnest("
        " CAST(:event_orders AS INTEGER[]), CAST(:event_actors AS INTEGER[]),"
        " CAST(:event_times AS TIMESTAMPTZ[])) AS u(o, a, t) RETURNING id, order_id)"
        " SELECT (SELECT json_agg(json_build_array(id, order_id, offer_id, sku_id))"
        " FROM items), (SELECT json_agg(json_build_array(id, order_id)) FROM events),"
        " json_build_array((SELECT count(*) FROM offers), (SELECT count(*) FROM counters),"
        " (SELECT count(*) FROM shelf))",
        refused=refused,
        **stock.sale_params(now),
        offer_ids=list(taken_offers),
        offer_qs=list(taken_offers.values()),
        counter_offers=[k[0] for k in counted],
        counter_buyers=[k[1] for k in counted],
        counter_qs=list(counted.values()),
        sku_ids=list(taken_skus),
        sku_qs=list(taken_skus.values()),
        item_orders=[c.order_id for c, _ in lines],
        item_skus=[p.sku_id for _, p in lines],
        item_offers=[p.line.offer_id for _, p in lines],
        item_titles=[p.title for _, p in lines],
        item_prices=[p.unit_price_cents for _, p in lines],
        item_qs=[p.line.quantity for _, p in lines],
        status=PENDING,
        event_orders=[c.order_id for c in accepted],
        event_actors=[c.cmd.buyer_id for c in accepted],
        event_times=[c.cmd.now for c in accepted],
    )
    if moved != [len(taken_offers), len(counted), len(taken_skus)]:
        if locked:
            raise RuntimeError(f"locked figures moved under an order batch: {moved}")
        raise Contended
    item_ids = {(o, f, s): i for i, o, f, s in item_rows}
    event_ids = {order_id: event_id for event_id, order_id in event_rows}
    for c in accepted:
        items = [
            stock.item_view(item_ids[c.order_id, p.line.offer_id, p.sku_id], p) for p in c.priced
        ]
        results[c.index] = stock.fresh_order(
            c.cmd,
            order_id=c.order_id,
            shop_id=c.shop_id,
            currency=c.currency,
            items_cents=_items_cents(c),
            shipping=c.shipping,
            items=items,
            event_id=event_ids[c.order_id],
        )


# Step 2's statement and the counters' read, with the rows locked (``FOR UPDATE``) or not.
_CLAIM_TEMPLATE = (
    "WITH claimed AS (INSERT INTO orders (buyer_id, shop_id, status, currency, items_cents,"
    " shipping_cents, total_cents, refunded_cents, ship_name, ship_phone,"
    " ship_region_code, ship_detail, idempotency_key, request_hash, created_at,"
    " expires_at, updated_at)"
    " SELECT b, s, :status, c, i, f, i + f, 0, n, p, r, d, k, h, t, e, t FROM unnest("
    " CAST(:b AS INTEGER[]), CAST(:s AS INTEGER[]), CAST(:c AS TEXT[]),"
    " CAST(:i AS BIGINT[]), CAST(:f AS BIGINT[]), CAST(:n AS TEXT[]),"
    " CAST(:p AS TEXT[]), CAST(:r AS TEXT[]), CAST(:d AS TEXT[]),"
    " CAST(:k AS TEXT[]), CAST(:h AS TEXT[]), CAST(:t AS TIMESTAMPTZ[]),"
    " CAST(:e AS TIMESTAMPTZ[])) AS u(b, s, c, i, f, n, p, r, d, k, h, t, e)"
    " ON CONFLICT (buyer_id, idempotency_key) DO NOTHING"
    " RETURNING id, buyer_id, idempotency_key),"
    f" offers AS (SELECT id, remaining, {stock.OFFER_ON_SALE} AS open FROM flash_offers"
    " WHERE id = ANY(:offer_ids) ORDER BY id{lock}),"
    " shelf AS (SELECT id, stock FROM skus WHERE id = ANY(:sku_ids) ORDER BY id{lock})"
    " SELECT (SELECT json_agg(json_build_array(id, buyer_id, idempotency_key)) FROM claimed),"
    " (SELECT json_agg(json_build_array(id, remaining, open)) FROM offers),"
    " (SELECT json_agg(json_build_array(id, stock)) FROM shelf)"
)
_COUNTERS_TEMPLATE = (
    "SELECT offer_id, buyer_id, quantity FROM offer_purchases"
    " WHERE offer_id = ANY(:offers) AND buyer_id = ANY(:buyers) ORDER BY offer_id, buyer_id{lock}"
)
_CLAIM = {
    locked: _CLAIM_TEMPLATE.replace("{lock}", " FOR UPDATE" * locked) for locked in (True, False)
}
_COUNTERS = {
    locked: _COUNTERS_TEMPLATE.replace("{lock}", " FOR UPDATE" * locked) for locked in (True, False)
}


def _accept(
    candidates: list[_Candidate],
    results: list[stock.Placed | OriginliveError | None],
    remaining: dict[int, int],
    is_open: dict[int, bool],
    shelf: dict[int, int],
    held: dict[tuple[int, int], int],
) -> list[_Candidate]:
    """The candidates whose units ``_take`` finds, in turn; the others get their refusal."""
    accepted: list[_Candidate] = []
    for c in candidates:
        try:
            _take(c, remaining, is_open, shelf, held)
        except OriginliveError as exc:
            results[c.index] = exc
        else:
            accepted.append(c)
    return accepted


def _taken(
    accepted: list[_Candidate],
) -> tuple[dict[int, int], dict[int, int], dict[tuple[int, int], int]]:
    """What the accepted orders take, summed: units per offer, units per SKU (plain lines),
    and units per (offer, buyer) for the buyers' counters."""
    offers: dict[int, int] = defaultdict(int)
    skus: dict[int, int] = defaultdict(int)
    counted: dict[tuple[int, int], int] = defaultdict(int)
    for c in accepted:
        for p in c.priced:
            if p.line.offer_id is None:
                skus[p.sku_id] += p.line.quantity
            else:
                offers[p.line.offer_id] += p.line.quantity
                counted[p.line.offer_id, c.cmd.buyer_id] += p.line.quantity
    return offers, skus, counted


def _take(
    c: _Candidate,
    remaining: dict[int, int],
    is_open: dict[int, bool],
    shelf: dict[int, int],
    held: dict[tuple[int, int], int],
) -> None:
    """``stock._take`` for every line of the order against the locked figures; all or none."""
    buyer = c.cmd.buyer_id
    for p in sorted(c.priced, key=stock.lock_order):
        q = p.line.quantity
        if p.line.offer_id is None:
            if shelf.get(p.sku_id, 0) < q:
                raise stock.SoldOut(f"Not enough of {p.title} in stock.")
            continue
        offer_id = p.line.offer_id
        if held.get((offer_id, buyer), 0) + q > (p.per_buyer_limit or 0):
            raise stock.OverLimit(f"At most {p.per_buyer_limit} of this offer per buyer.")
        if not is_open.get(offer_id, False) or remaining.get(offer_id, 0) < q:
            # Ended between the price check and the lock: stock.place says sold out too.
            raise stock.SoldOut(f"{p.title} is sold out.")
    for p in c.priced:
        q = p.line.quantity
        if p.line.offer_id is None:
            shelf[p.sku_id] -= q
        else:
            remaining[p.line.offer_id] -= q
            held[p.line.offer_id, buyer] = held.get((p.line.offer_id, buyer), 0) + q


def _items_cents(c: _Candidate) -> int:
    return sum(p.unit_price_cents * p.line.quantity for p in c.priced)


def _replayed(conn: Connection, order_id: int, same: bool) -> stock.Placed | OriginliveError:
    try:
        return stock.replay_of(conn, order_id=order_id, same_request=same)
    except stock.IdempotencyMismatch as exc:
        return exc


def _done(
    results: list[stock.Placed | OriginliveError | None],
) -> list[stock.Placed | OriginliveError]:
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


# SQLite: the order writer holds the write lock for the whole batch


def _place_many_embedded(
    conn: Connection, cmds: Sequence[stock.PlaceOrder]
) -> list[stock.Placed | OriginliveError]:
    """SQLite's batch, in rounds of distinct keys: a key pressed twice in one batch is placed
    in the first round and replayed (or refused as reused) in the next, as one by one."""
    results: list[stock.Placed | OriginliveError | None] = [None] * len(cmds)
    waiting = list(range(len(cmds)))
    while waiting:
        keys: set[tuple[int, str]] = set()
        first: list[int] = []
        later: list[int] = []
        for i in waiting:
            key = (cmds[i].buyer_id, cmds[i].idempotency_key)
            (later if key in keys else first).append(i)
            keys.add(key)
        for i, outcome in zip(first, _place_round(conn, [cmds[i] for i in first]), strict=True):
            results[i] = outcome
        waiting = later
    return _done(results)


def _place_round(
    conn: Connection, cmds: Sequence[stock.PlaceOrder]
) -> list[stock.Placed | OriginliveError | None]:
    """One round on SQLite: a few statements for the whole round, ``executemany`` for rows.

    The order writer began the transaction with ``BEGIN IMMEDIATE``: it holds SQLite's write
    lock from its first read, so what it reads stays true until it commits, and the ids it
    gives new rows (after the largest, as SQLite itself would) are free.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    results: list[stock.Placed | OriginliveError | None] = [None] * len(cmds)
    hashes = [cmd.request_hash for cmd in cmds]
    now = rawsql.db_time(conn, max(cmd.now for cmd in cmds))
    offer_ids = json.dumps(sorted({ln.offer_id for c in cmds for ln in c.lines if ln.offer_id}))
    sku_ids = json.dumps(sorted({ln.sku_id for c in cmds for ln in c.lines if ln.sku_id}))

    # 1. Replays, prices, regions and rates: a statement each for the round.
    pairs = json.dumps([[c.buyer_id, c.idempotency_key] for c in cmds])
    for i, order_id, request_hash in cursor.execute(
        "SELECT j.key, o.id, o.request_hash FROM json_each(?) AS j JOIN orders AS o"
        " ON o.buyer_id = j.value ->> 0 AND o.idempotency_key = j.value ->> 1",
        (pairs,),
    ).fetchall():
        results[i] = _replayed(conn, order_id, request_hash == hashes[i])
    offers: dict[int, Any] = {}
    remaining: dict[int, int] = {}
    for offer_id, *row, left in cursor.execute(
        "SELECT id, sku_id, shop_id, title, price_cents, currency, per_buyer_limit,"
        f" {stock.OFFER_ON_SALE}, remaining FROM flash_offers"
        " WHERE id IN (SELECT value FROM json_each(:offer_ids))",
        {**stock.sale_params(now), "offer_ids": offer_ids},
    ).fetchall():
        offers[offer_id] = (*row[:-1], bool(row[-1]))
        remaining[offer_id] = left
    skus: dict[int, Any] = {}
    shelf: dict[int, int] = {}
    for sku_id, *row, left in cursor.execute(
        "SELECT skus.id, skus.name, skus.price_cents, skus.currency, products.title,"
        " products.shop_id, skus.stock FROM skus JOIN products ON products.id = skus.product_id"
        " JOIN shops ON shops.id = products.shop_id"
        f" WHERE skus.id IN (SELECT value FROM json_each(:sku_ids)) AND {stock.SKU_ON_SALE}",
        {**stock.sale_params(now), "sku_ids": sku_ids},
    ).fetchall():
        skus[sku_id] = tuple(row)
        shelf[sku_id] = left
    codes = json.dumps(sorted({c.address.region_code for c in cmds}))
    paths = dict(
        cursor.execute(
            "SELECT code, path FROM regions WHERE code IN (SELECT value FROM json_each(?))",
            (codes,),
        ).fetchall()
    )
    shop_ids = json.dumps(sorted({o[1] for o in offers.values()} | {s[4] for s in skus.values()}))
    rates: dict[int, list[tuple[str | None, int]]] = defaultdict(list)
    for shop_id, code, fee in cursor.execute(
        "SELECT shop_id, region_code, fee_cents FROM shipping_rates"
        " WHERE shop_id IN (SELECT value FROM json_each(?))",
        (shop_ids,),
    ).fetchall():
        rates[shop_id].append((code, fee))

    candidates = _candidates(cmds, results, offers, skus, paths, rates)
    if not candidates:
        return results
    held: dict[tuple[int, int], int] = {}
    for offer_id, buyer, quantity in cursor.execute(
        "SELECT offer_id, buyer_id, quantity FROM offer_purchases"
        " WHERE offer_id IN (SELECT value FROM json_each(?))"
        " AND buyer_id IN (SELECT value FROM json_each(?))",
        (offer_ids, json.dumps(sorted({c.cmd.buyer_id for c in candidates}))),
    ).fetchall():
        held[offer_id, buyer] = quantity
    is_open = {offer_id: offer[-1] for offer_id, offer in offers.items()}

    # 2. One after another, as stock.place would: all lines of an order, or none.
    accepted = _accept(candidates, results, remaining, is_open, shelf, held)
    if accepted:
        _write_embedded(conn, cursor, accepted, results, hashes)
    return results


def _write_embedded(
    conn: Connection,
    cursor: Any,
    accepted: list[_Candidate],
    results: list[stock.Placed | OriginliveError | None],
    hashes: list[str],
) -> None:
    """3. The accepted orders' rows, an ``executemany`` per table, and their answers."""
    order_id, item_id, event_id = cursor.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM orders),"
        " (SELECT coalesce(max(id), 0) FROM order_items),"
        " (SELECT coalesce(max(id), 0) FROM order_events)"
    ).fetchone()
    order_rows, item_rows, event_rows = [], [], []
    for c in accepted:
        cmd, address = c.cmd, c.cmd.address
        order_id += 1
        event_id += 1
        c.order_id = order_id
        items_cents = _items_cents(c)
        created = rawsql.db_time(conn, cmd.now)
        order_rows.append(
            (
                *(order_id, cmd.buyer_id, c.shop_id, PENDING, c.currency, items_cents),
                *(c.shipping, items_cents + c.shipping, address.name, address.phone),
                *(address.region_code, address.detail, cmd.idempotency_key, hashes[c.index]),
                *(created, rawsql.db_time(conn, cmd.now + cmd.ttl), created),
            )
        )
        event_rows.append((event_id, order_id, PENDING, cmd.buyer_id, created))
        for p in c.priced:
            item_id += 1
            q = p.line.quantity
            item_rows.append(
                (item_id, order_id, p.sku_id, p.line.offer_id, p.title, p.unit_price_cents, q)
            )
            c.items.append(stock.item_view(item_id, p))
        results[c.index] = stock.fresh_order(
            cmd,
            order_id=order_id,
            shop_id=c.shop_id,
            currency=c.currency,
            items_cents=items_cents,
            shipping=c.shipping,
            items=c.items,
            event_id=event_id,
        )
    # The checks were made above against figures nobody else can change meanwhile; the
    # conditions stay as a backstop (with the CHECK constraints): a miss fails the batch.
    taken_offers, taken_skus, counted = _taken(accepted)
    offers = [(q, offer_id, q) for offer_id, q in taken_offers.items()]
    cursor.executemany(
        "UPDATE flash_offers SET remaining = remaining - ? WHERE id = ? AND remaining >= ?", offers
    )
    if cursor.rowcount != len(offers):
        raise RuntimeError("an offer's units moved under the order writer")
    cursor.executemany(
        "INSERT INTO offer_purchases (offer_id, buyer_id, quantity) VALUES (?, ?, ?)"
        " ON CONFLICT (offer_id, buyer_id) DO UPDATE"
        " SET quantity = offer_purchases.quantity + excluded.quantity",
        [(offer_id, buyer, q) for (offer_id, buyer), q in counted.items()],
    )
    shelf = [(q, sku_id, q) for sku_id, q in taken_skus.items()]
    cursor.executemany("UPDATE skus SET stock = stock - ? WHERE id = ? AND stock >= ?", shelf)
    if cursor.rowcount != len(shelf):
        raise RuntimeError("a SKU's stock moved under the order writer")
    cursor.executemany(
        "INSERT INTO orders (id, buyer_id, shop_id, status, currency, items_cents,"
        " shipping_cents, total_cents, refunded_cents, ship_name, ship_phone, ship_region_code,"
        " ship_detail, idempotency_key, request_hash, created_at, expires_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        order_rows,
    )
    cursor.executemany(
        "INSERT INTO order_items (id, order_id, sku_id, offer_id, title, unit_price_cents,"
        " quantity) VALUES (?, ?, ?, ?, ?, ?, ?)",
        item_rows,
    )
    cursor.executemany(
        "INSERT INTO order_events (id, order_id, from_status, to_status, actor_id, created_at)"
        " VALUES (?, ?, NULL, ?, ?, ?)",
        event_rows,
    )


PLACE = Batched(many=place_many, one=stock.place)


# The batching placer


_RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure


class BulkPlacer(Gatherer[stock.PlaceOrder]):
    """Each process sends its orders to PostgreSQL in batches (``place_many``), one batch at
    a time on a connection of its own; while one commits, the next gathers."""

    def __init__(self, url: str, *, max_batch: int = 500) -> None:
        super().__init__()
        self._engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_pre_ping=True,
            connect_args=INDEX_PLANS,
        )
        self._max_batch = max_batch

    async def place(self, cmd: stock.PlaceOrder) -> stock.Placed:
        placed: stock.Placed = await self._submit(cmd)
        return placed

    async def close(self) -> None:
        await self._stop()
        await self._engine.dispose()

    def _take(self) -> list[tuple[stock.PlaceOrder, Any]]:
        batch: list[tuple[stock.PlaceOrder, Any]] = []
        later: list[tuple[stock.PlaceOrder, Any]] = []
        keys: set[tuple[int, str]] = set()
        for cmd, future in self._waiting:
            key = (cmd.buyer_id, cmd.idempotency_key)
            if len(batch) < self._max_batch and key not in keys:
                keys.add(key)
                batch.append((cmd, future))
            else:  # the same key twice: the second waits for the first's answer
                later.append((cmd, future))
        self._waiting = later
        return batch

    async def _handle(self, batch: list[tuple[stock.PlaceOrder, Any]]) -> None:
        await self._place(batch)

    async def _place(self, batch: list[tuple[stock.PlaceOrder, Any]]) -> None:
        cmds = [cmd for cmd, _ in batch]
        attempt = 0
        while True:
            # First unlocked, so that the batches of several processes overlap; again locked
            # if the figures moved, or after a deadlock.
            locked = attempt > 0
            try:
                async with self._engine.begin() as conn:
                    outcomes = await conn.run_sync(place_many, cmds, locked=locked)
                break
            except Contended:
                attempt += 1
                continue
            except Exception as exc:
                code = getattr(getattr(exc, "orig", None), "sqlstate", None)
                if code in _RETRYABLE and attempt < 4:  # nothing of it committed: again
                    attempt += 1
                    log.warning("order batch retried after %s", code)
                    continue
                if len(batch) > 1:  # one bad order must not fail the others: each alone
                    log.warning("order batch failed; placing its orders one by one: %r", exc)
                    for item in batch:
                        await self._place([item])
                    return
                log.exception("order failed")
                answer(batch[0][1], False, exc)
                return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            # A caller that went away: the order stands regardless.
            answer(future, not isinstance(outcome, OriginliveError), outcome)
