"""Placing orders: the rule of ``placing`` between a read and a write of each database.

When an anchor pins an offer, the orders of one moment all want the same offer row. Placed one
by one, each costs its own statements: on PostgreSQL a statement is a round trip to the server
(about 270 us, measured with asyncpg on loopback) and one transaction per order gave about 260
orders a second; on SQLite about ten statements an order kept the writer at a few thousand.
So ``place_many`` reads the figures of the orders that arrive together with a few statements,
lets ``placing`` decide them one after another, and writes the accepted with a few more. One
order alone is a batch of one (``place_one``). A hypothesis test compares batches with the
same requests placed one at a time, on both databases.

On PostgreSQL (``BulkPlacer``: each process sends its orders in batches), five round trips:

1. keys already used (replays) in one select; prices, shipping regions and rates in three;
2. each new order's key is claimed (``INSERT ... ON CONFLICT DO NOTHING``): a key taken
   meanwhile by another process makes that order a replay, before any unit moves;
3. the offers, then the SKUs, are locked in id order (``FOR UPDATE``), then the counters of
   the batch's buyers on those offers; every rule takes its locks in that order
   (``stock.release`` and ``stock.end_offer`` too), so batches of different processes queue
   at the offer rows instead of deadlocking;
4. the orders are decided against those locked figures (``placing.take_all``);
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
from typing import Any, Protocol

from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session, selectinload

from originlive import rawsql
from originlive.batching import INDEX_PLANS, Batched, BatchWriter, Gatherer, answer
from originlive.errors import OriginliveError
from originlive.orders import placing, schemas, stock
from originlive.orders.models import Order

log = logging.getLogger(__name__)


class OrderPlacer(Protocol):
    async def place(self, cmd: placing.PlaceOrder) -> placing.Placed: ...

    async def close(self) -> None: ...


class WriterPlacer:
    """Each order a job of SQLite's order writer, which decides the orders that wait
    together with one call of ``place_many`` (``place_one`` each, if that fails)."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    async def place(self, cmd: placing.PlaceOrder) -> placing.Placed:
        return await self._writer.run_batched(PLACE, cmd)

    async def close(self) -> None:
        return None


class AnnouncingPlacer:
    """A placer that tells a listener of each new order once it is committed (the live rooms
    show purchases); a listener's failure never fails the order."""

    def __init__(self, placer: OrderPlacer, listener: Callable[[placing.Placed], None]) -> None:
        self._placer = placer
        self._listener = listener

    async def place(self, cmd: placing.PlaceOrder) -> placing.Placed:
        placed = await self._placer.place(cmd)
        try:
            self._listener(placed)
        except Exception:
            log.exception("telling of a placed order failed")
        return placed

    async def close(self) -> None:
        await self._placer.close()


class Contended(Exception):
    """The figures an unlocked batch decided on moved before it wrote them (another process's
    batch, a release, an end): roll it back and place it again with the rows locked."""


def place_many(
    conn: Connection, cmds: Sequence[placing.PlaceOrder], *, locked: bool = True
) -> list[placing.Outcome]:
    """Decide and record these orders in the caller's transaction, one after another by
    ``placing``'s rule; returns each one's answer or refusal. (On PostgreSQL keys must be
    distinct; the bulk placer sends a key's second press in a later batch.)

    On PostgreSQL, ``locked=False`` decides on figures read without locking the offers and
    writes with conditions that hold only if they have not moved, else raises ``Contended``
    (see ``_decide``).
    """
    if conn.dialect.name == "sqlite":
        return _place_many_embedded(conn, cmds)
    outcomes: list[placing.Outcome | None] = [None] * len(cmds)
    hashes = [cmd.request_hash for cmd in cmds]
    now = max(cmd.now for cmd in cmds)
    offer_ids, sku_ids = _named(cmds)

    # 1. Replays and the terms, which do not move while orders are placed. One round trip.
    replays, offer_rows, sku_rows, region_rows, rate_rows = _json_row(
        conn,
        # A lookup per key (LATERAL) by the unique index, whatever the planner's statistics
        # say of a table that grows by thousands of rows a second.
        "SELECT (SELECT json_agg(json_build_array(o.buyer_id, o.idempotency_key, o.id,"
        " o.request_hash)) FROM unnest(CAST(:buyers AS INTEGER[]), CAST(:keys AS TEXT[]))"
        " AS k(buyer_id, key) CROSS JOIN LATERAL (SELECT * FROM orders"
        " WHERE orders.buyer_id = k.buyer_id AND orders.idempotency_key = k.key) AS o),"
        f" (SELECT json_agg(json_build_array(id, {_OFFER_TERMS})) FROM flash_offers"
        " WHERE id = ANY(:offer_ids)),"
        f" (SELECT json_agg(json_build_array(skus.id, {_SKU_TERMS})) FROM {_SKU_JOIN}"
        f" WHERE skus.id = ANY(:sku_ids) AND {stock.SKU_ON_SALE}),"
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
    index = {c.key: i for i, c in enumerate(cmds)}
    for buyer, key, order_id, request_hash in replays:
        i = index[buyer, key]
        outcomes[i] = replay(conn, order_id=order_id, same_request=request_hash == hashes[i])
    terms = _terms(offer_rows, sku_rows, region_rows, rate_rows)
    orders = placing.price_all(cmds, outcomes, terms)
    if orders:
        _decide(conn, orders, outcomes, hashes, now, locked=locked)
    return _done(outcomes)


def place_one(conn: Connection, cmd: placing.PlaceOrder) -> placing.Placed:
    """One order: a batch of one; its refusal is raised."""
    outcome = place_many(conn, [cmd])[0]
    if isinstance(outcome, OriginliveError):
        raise outcome
    return outcome


# What every adapter reads of an offer's and a SKU's terms, in ``OfferTerms``'s and
# ``SkuTerms``'s order.
_OFFER_TERMS = (
    "sku_id, shop_id, title, price_cents, currency, per_buyer_limit,"
    f" {stock.OFFER_ON_SALE}, live_session_id, anchor_id, plan_id, commission_bp"
)
_ON_SALE = 6  # where ``OFFER_ON_SALE`` is among ``_OFFER_TERMS``'s columns
_SKU_TERMS = "products.shop_id, products.title || ' ' || skus.name, skus.price_cents, skus.currency"
_SKU_JOIN = (
    "skus JOIN products ON products.id = skus.product_id JOIN shops ON shops.id = products.shop_id"
)


def _named(cmds: Sequence[placing.PlaceOrder]) -> tuple[list[int], list[int]]:
    """The offers and the SKUs (of plain lines) the requests name, by id."""
    offers = sorted({ln.offer_id for c in cmds for ln in c.lines if ln.offer_id is not None})
    skus = sorted({ln.sku_id for c in cmds for ln in c.lines if ln.sku_id is not None})
    return offers, skus


def _terms(
    offer_rows: Sequence[Sequence[Any]],
    sku_rows: Sequence[Sequence[Any]],
    region_rows: Sequence[Sequence[Any]],
    rate_rows: Sequence[Sequence[Any]],
) -> placing.Terms:
    """The terms from rows of (id, *``_OFFER_TERMS``), (id, *``_SKU_TERMS``), (code, path)
    and (shop, region, fee)."""
    rates: dict[int, list[tuple[str | None, int]]] = defaultdict(list)
    for shop_id, code, fee in rate_rows:
        rates[shop_id].append((code, fee))
    return placing.Terms(
        offers={r[0]: _offer_terms(r[1:]) for r in offer_rows},
        skus={r[0]: placing.SkuTerms(r[1], r[2], r[3], r[4]) for r in sku_rows},
        paths={code: path for code, path in region_rows},
        rates=dict(rates),
    )


def _offer_terms(row: Sequence[Any]) -> placing.OfferTerms:
    sku, shop, title, price, currency, limit, on_sale, session, anchor, plan, rate = row
    sold_by = placing.NOBODY
    if session is not None or anchor is not None:
        sold_by = placing.Attribution(session, anchor, plan, rate)
    return placing.OfferTerms(sku, shop, title, price, currency, limit, bool(on_sale), sold_by)


def _json_row(conn: Connection, sql: str, **params: Any) -> list[list[Any]]:
    """A row of ``json_agg`` columns, each as a list (empty for NULL). SQLAlchemy's asyncpg
    dialect decodes JSON itself; a driver that does not gives text."""
    row = rawsql.execute(conn, sql, **params).fetchone()
    return [json.loads(v) if isinstance(v, str | bytes) else (v or []) for v in row]


def _decide(
    conn: Connection,
    orders: list[placing.Decided],
    outcomes: list[placing.Outcome | None],
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
    offer_ids = sorted({p.line.offer_id for o in orders for p in o.lines if p.line.offer_id})
    sku_ids = sorted({p.sku_id for o in orders for p in o.lines if p.line.offer_id is None})

    # 2. Claim each order's key, then lock the offers and the SKUs in id order (the order
    # every rule takes them in). A key taken meanwhile by another process makes its order a
    # replay, before any unit moves.
    claimed_rows, offer_rows, sku_rows = _json_row(
        conn,
        _CLAIM[locked],
        status=placing.PENDING,
        b=[o.cmd.buyer_id for o in orders],
        s=[o.shop_id for o in orders],
        c=[o.currency for o in orders],
        i=[o.items_cents for o in orders],
        f=[o.shipping_cents for o in orders],
        n=[o.cmd.address.name for o in orders],
        p=[o.cmd.address.phone for o in orders],
        r=[o.cmd.address.region_code for o in orders],
        d=[o.cmd.address.detail for o in orders],
        k=[o.cmd.idempotency_key for o in orders],
        h=[hashes[o.index] for o in orders],
        t=[o.cmd.now for o in orders],
        e=[o.cmd.now + o.cmd.ttl for o in orders],
        **stock.sale_params(now),
        offer_ids=offer_ids,
        sku_ids=sku_ids,
    )
    claimed = {(buyer, key): order_id for order_id, buyer, key in claimed_rows}
    ids: dict[int, int] = {}
    for o in orders:
        order_id = claimed.get(o.cmd.key)
        if order_id is None:  # taken meanwhile: its first answer, or 422 for another body
            outcomes[o.index] = _replay_key(conn, o.cmd, hashes[o.index])
        else:
            ids[o.index] = order_id
    orders = [o for o in orders if o.index in ids]
    units = placing.Units(
        remaining={offer_id: left for offer_id, left, _open in offer_rows},
        open={offer_id: open_ for offer_id, _left, open_ in offer_rows},
        shelf=dict(sku_rows),
    )
    # The buyers' counts, read now that their offers are locked (a fresh snapshot: what the
    # transactions we waited for committed is in it).
    if offer_ids and orders:
        for offer_id, buyer, quantity in rawsql.execute(
            conn,
            _COUNTERS[locked],
            offers=offer_ids,
            buyers=sorted({o.cmd.buyer_id for o in orders}),
        ).fetchall():
            units.held[offer_id, buyer] = quantity

    # 3. One after another, by the rule.
    accepted = placing.take_all(orders, outcomes, units)
    refused = [ids[o.index] for o in orders if outcomes[o.index] is not None]

    # 4. Write it all down in one statement; refused orders' claimed rows go. Units, counts
    # and stock move only where the figures still allow it (always, when they were locked).
    took = placing.taken(accepted)
    lines = [(ids[o.index], p) for o in accepted for p in o.lines]
    item_rows, event_rows, moved = _json_row(
        conn,
        _WRITE,
        refused=refused,
        **stock.sale_params(now),
        offer_ids=list(took.offers),
        offer_qs=list(took.offers.values()),
        counter_offers=[k[0] for k in took.counted],
        counter_buyers=[k[1] for k in took.counted],
        counter_qs=list(took.counted.values()),
        sku_ids=list(took.skus),
        sku_qs=list(took.skus.values()),
        item_orders=[order_id for order_id, _ in lines],
        item_skus=[p.sku_id for _, p in lines],
        item_offers=[p.line.offer_id for _, p in lines],
        item_titles=[p.title for _, p in lines],
        item_prices=[p.unit_price_cents for _, p in lines],
        item_qs=[p.line.quantity for _, p in lines],
        **_attribution_columns([p for _, p in lines]),
        status=placing.PENDING,
        event_orders=[ids[o.index] for o in accepted],
        event_actors=[o.cmd.buyer_id for o in accepted],
        event_times=[o.cmd.now for o in accepted],
    )
    if moved != [len(took.offers), len(took.counted), len(took.skus)]:
        if locked:
            raise RuntimeError(f"locked figures moved under an order batch: {moved}")
        raise Contended
    item_ids = {(o, f, s): i for i, o, f, s in item_rows}
    event_ids = {order_id: event_id for event_id, order_id in event_rows}
    for o in accepted:
        order_id = ids[o.index]
        outcomes[o.index] = placing.placed(
            o,
            order_id=order_id,
            item_ids=[item_ids[order_id, p.line.offer_id, p.sku_id] for p in o.lines],
            event_id=event_ids[order_id],
        )


def _attribution_columns(lines: Sequence[placing.PricedLine]) -> dict[str, list[int | None]]:
    """The lines' attribution as the arrays of ``_WRITE``'s items."""
    columns = zip(*(p.attribution.row for p in lines), strict=True) if lines else [()] * 4
    names = ("item_sessions", "item_anchors", "item_plans", "item_rates")
    return {name: list(values) for name, values in zip(names, columns, strict=True)}


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
# Step 4: units, counts and stock taken where the figures still allow it, the items and the
# first events written, the refused orders' claimed rows deleted.
_WRITE = (
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
    " unit_price_cents, quantity, live_session_id, anchor_id, plan_id, commission_bp)"
    " SELECT * FROM unnest(CAST(:item_orders AS INTEGER[]),"
    " CAST(:item_skus AS INTEGER[]), CAST(:item_offers AS INTEGER[]),"
    " CAST(:item_titles AS TEXT[]), CAST(:item_prices AS BIGINT[]),"
    " CAST(:item_qs AS INTEGER[]), CAST(:item_sessions AS INTEGER[]),"
    " CAST(:item_anchors AS INTEGER[]), CAST(:item_plans AS INTEGER[]),"
    " CAST(:item_rates AS INTEGER[])) RETURNING id, order_id, offer_id, sku_id),"
    " events AS (INSERT INTO order_events (order_id, from_status, to_status, actor_id,"
    " created_at) SELECT o, NULL, :status, a, t FROM unnest("
    " CAST(:event_orders AS INTEGER[]), CAST(:event_actors AS INTEGER[]),"
    " CAST(:event_times AS TIMESTAMPTZ[])) AS u(o, a, t) RETURNING id, order_id)"
    " SELECT (SELECT json_agg(json_build_array(id, order_id, offer_id, sku_id))"
    " FROM items), (SELECT json_agg(json_build_array(id, order_id)) FROM events),"
    " json_build_array((SELECT count(*) FROM offers), (SELECT count(*) FROM counters),"
    " (SELECT count(*) FROM shelf))"
)


# Replays


def replay(conn: Connection, *, order_id: int, same_request: bool) -> placing.Outcome:
    """The first order placed with a key, answered again; refused if this request differs."""
    if not same_request:
        return placing.IdempotencyMismatch()
    return placing.Placed(order=order_view(conn, order_id=order_id), replayed=True)


def _replay_key(conn: Connection, cmd: placing.PlaceOrder, request_hash: str) -> placing.Outcome:
    """The answer to a request whose key another transaction claimed and committed."""
    order_id, first_hash = rawsql.execute(
        conn,
        "SELECT id, request_hash FROM orders WHERE buyer_id = :buyer AND idempotency_key = :key",
        buyer=cmd.buyer_id,
        key=cmd.idempotency_key,
    ).fetchone()
    return replay(conn, order_id=order_id, same_request=first_hash == request_hash)


def order_view(conn: Connection, *, order_id: int) -> dict[str, Any]:
    """The order as the API shows it, read through the ORM; off the hot path (replays)."""
    with Session(bind=conn) as session:  # joins the caller's transaction, never ends it
        order = session.scalars(
            select(Order)
            .where(Order.id == order_id)
            .options(selectinload(Order.items), selectinload(Order.events))
        ).one()
        return schemas.Order.model_validate(order).model_dump()


def _done(outcomes: list[placing.Outcome | None]) -> list[placing.Outcome]:
    assert all(r is not None for r in outcomes)
    return [r for r in outcomes if r is not None]


# SQLite: the order writer holds the write lock for the whole batch


def _place_many_embedded(
    conn: Connection, cmds: Sequence[placing.PlaceOrder]
) -> list[placing.Outcome]:
    """SQLite's batch, in rounds of distinct keys: a key pressed twice in one batch is placed
    in the first round and replayed (or refused as reused) in the next, as one by one."""
    outcomes: list[placing.Outcome | None] = [None] * len(cmds)
    waiting = list(range(len(cmds)))
    while waiting:
        keys: set[tuple[int, str]] = set()
        first: list[int] = []
        later: list[int] = []
        for i in waiting:
            (later if cmds[i].key in keys else first).append(i)
            keys.add(cmds[i].key)
        for i, outcome in zip(first, _place_round(conn, [cmds[i] for i in first]), strict=True):
            outcomes[i] = outcome
        waiting = later
    return _done(outcomes)


def _place_round(
    conn: Connection, cmds: Sequence[placing.PlaceOrder]
) -> list[placing.Outcome | None]:
    """One round on SQLite: a few statements for the whole round, ``executemany`` for rows.

    The order writer began the transaction with ``BEGIN IMMEDIATE``: it holds SQLite's write
    lock from its first read, so what it reads stays true until it commits, and the ids it
    gives new rows (after the largest, as SQLite itself would) are free.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    outcomes: list[placing.Outcome | None] = [None] * len(cmds)
    hashes = [cmd.request_hash for cmd in cmds]
    now = rawsql.db_time(conn, max(cmd.now for cmd in cmds))
    named_offers, named_skus = _named(cmds)
    offer_ids, sku_ids = json.dumps(named_offers), json.dumps(named_skus)

    # 1. Replays, the terms and the units: a statement each for the round.
    pairs = json.dumps([list(c.key) for c in cmds])
    for i, order_id, request_hash in cursor.execute(
        "SELECT j.key, o.id, o.request_hash FROM json_each(?) AS j JOIN orders AS o"
        " ON o.buyer_id = j.value ->> 0 AND o.idempotency_key = j.value ->> 1",
        (pairs,),
    ).fetchall():
        outcomes[i] = replay(conn, order_id=order_id, same_request=request_hash == hashes[i])
    units = placing.Units()
    offer_rows = []
    for offer_id, *row, left in cursor.execute(
        f"SELECT id, {_OFFER_TERMS}, remaining FROM flash_offers"
        " WHERE id IN (SELECT value FROM json_each(:offer_ids))",
        {**stock.sale_params(now), "offer_ids": offer_ids},
    ).fetchall():
        offer_rows.append((offer_id, *row))
        units.remaining[offer_id] = left
        units.open[offer_id] = bool(row[_ON_SALE])
    sku_rows = []
    for sku_id, *row, left in cursor.execute(
        f"SELECT skus.id, {_SKU_TERMS}, skus.stock FROM {_SKU_JOIN}"
        f" WHERE skus.id IN (SELECT value FROM json_each(:sku_ids)) AND {stock.SKU_ON_SALE}",
        {**stock.sale_params(now), "sku_ids": sku_ids},
    ).fetchall():
        sku_rows.append((sku_id, *row))
        units.shelf[sku_id] = left
    codes = json.dumps(sorted({c.address.region_code for c in cmds}))
    region_rows = cursor.execute(
        "SELECT code, path FROM regions WHERE code IN (SELECT value FROM json_each(?))", (codes,)
    ).fetchall()
    shop_ids = json.dumps(sorted({r[2] for r in offer_rows} | {r[1] for r in sku_rows}))
    rate_rows = cursor.execute(
        "SELECT shop_id, region_code, fee_cents FROM shipping_rates"
        " WHERE shop_id IN (SELECT value FROM json_each(?))",
        (shop_ids,),
    ).fetchall()
    terms = _terms(offer_rows, sku_rows, region_rows, rate_rows)
    orders = placing.price_all(cmds, outcomes, terms)
    if not orders:
        return outcomes
    for offer_id, buyer, quantity in cursor.execute(
        "SELECT offer_id, buyer_id, quantity FROM offer_purchases"
        " WHERE offer_id IN (SELECT value FROM json_each(?))"
        " AND buyer_id IN (SELECT value FROM json_each(?))",
        (offer_ids, json.dumps(sorted({o.cmd.buyer_id for o in orders}))),
    ).fetchall():
        units.held[offer_id, buyer] = quantity

    # 2. One after another, by the rule.
    accepted = placing.take_all(orders, outcomes, units)
    if accepted:
        _write_embedded(conn, cursor, accepted, outcomes, hashes)
    return outcomes


def _write_embedded(
    conn: Connection,
    cursor: Any,
    accepted: list[placing.Decided],
    outcomes: list[placing.Outcome | None],
    hashes: list[str],
) -> None:
    """3. The accepted orders' rows, an ``executemany`` per table, and their answers."""
    order_id, item_id, event_id = cursor.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM orders),"
        " (SELECT coalesce(max(id), 0) FROM order_items),"
        " (SELECT coalesce(max(id), 0) FROM order_events)"
    ).fetchone()
    order_rows, item_rows, event_rows = [], [], []
    for o in accepted:
        cmd, address = o.cmd, o.cmd.address
        order_id += 1
        event_id += 1
        items_cents = o.items_cents
        created = rawsql.db_time(conn, cmd.now)
        order_rows.append(
            (
                *(order_id, cmd.buyer_id, o.shop_id, placing.PENDING, o.currency, items_cents),
                *(o.shipping_cents, items_cents + o.shipping_cents, address.name, address.phone),
                *(address.region_code, address.detail, cmd.idempotency_key, hashes[o.index]),
                *(created, rawsql.db_time(conn, cmd.now + cmd.ttl), created),
            )
        )
        event_rows.append((event_id, order_id, placing.PENDING, cmd.buyer_id, created))
        item_ids = list(range(item_id + 1, item_id + 1 + len(o.lines)))
        item_id += len(o.lines)
        for i, p in zip(item_ids, o.lines, strict=True):
            line = (p.line.offer_id, p.title, p.unit_price_cents, p.line.quantity)
            item_rows.append((i, order_id, p.sku_id, *line, *p.attribution.row))
        outcomes[o.index] = placing.placed(
            o, order_id=order_id, item_ids=item_ids, event_id=event_id
        )
    # The checks were made above against figures nobody else can change meanwhile; the
    # conditions stay as a backstop (with the CHECK constraints): a miss fails the batch.
    took = placing.taken(accepted)
    offers = [(q, offer_id, q) for offer_id, q in took.offers.items()]
    cursor.executemany(
        "UPDATE flash_offers SET remaining = remaining - ? WHERE id = ? AND remaining >= ?", offers
    )
    if cursor.rowcount != len(offers):
        raise RuntimeError("an offer's units moved under the order writer")
    cursor.executemany(
        "INSERT INTO offer_purchases (offer_id, buyer_id, quantity) VALUES (?, ?, ?)"
        " ON CONFLICT (offer_id, buyer_id) DO UPDATE"
        " SET quantity = offer_purchases.quantity + excluded.quantity",
        [(offer_id, buyer, q) for (offer_id, buyer), q in took.counted.items()],
    )
    shelf = [(q, sku_id, q) for sku_id, q in took.skus.items()]
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
        " quantity, live_session_id, anchor_id, plan_id, commission_bp)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        item_rows,
    )
    cursor.executemany(
        "INSERT INTO order_events (id, order_id, from_status, to_status, actor_id, created_at)"
        " VALUES (?, ?, NULL, ?, ?, ?)",
        event_rows,
    )


PLACE = Batched(many=place_many, one=place_one)


# The batching placer


_RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure


class BulkPlacer(Gatherer[placing.PlaceOrder]):
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

    async def place(self, cmd: placing.PlaceOrder) -> placing.Placed:
        placed: placing.Placed = await self._submit(cmd)
        return placed

    async def close(self) -> None:
        await self._stop()
        await self._engine.dispose()

    def _take(self) -> list[tuple[placing.PlaceOrder, Any]]:
        batch: list[tuple[placing.PlaceOrder, Any]] = []
        later: list[tuple[placing.PlaceOrder, Any]] = []
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

    async def _handle(self, batch: list[tuple[placing.PlaceOrder, Any]]) -> None:
        await self._place(batch)

    async def _place(self, batch: list[tuple[placing.PlaceOrder, Any]]) -> None:
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
