"""Placing orders on PostgreSQL: many orders per transaction, a few statements per batch.

On SQLite one writer thread runs ``stock.place`` order by order, where a statement costs a few
microseconds. On PostgreSQL a statement is a round trip to the server (about 270 us here,
measured with asyncpg on loopback) and every order of a flash sale waits for the same offer
row's lock: one transaction per order gave about 260 orders a second. So each process sends
its orders in batches, and ``place_many`` decides a batch with about a dozen statements, each
for the whole batch:

1. keys already used (replays) in one select; prices, shipping regions and rates in three;
2. each new order's key is claimed (``INSERT ... ON CONFLICT DO NOTHING``): a key taken
   meanwhile by another process makes that order a replay, before any unit moves;
3. the offers, then the SKUs, are locked in id order (``FOR UPDATE``), then the counters of
   the batch's buyers on those offers; every rule takes its locks in that order
   (``stock.release`` and ``stock.end_offer`` too), so batches of different processes queue
   at the offer rows instead of deadlocking;
4. the orders are decided one after another in Python against those locked figures, exactly
   as ``stock.place`` would decide them in turn: the same checks, the same errors;
5. units, counters, items and events are written with one statement each; refused orders'
   claimed rows are deleted. The database's CHECK (remaining >= 0) stays as a backstop.

The answers reach their callers only after the commit (invariant 6).
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from originlive import rawsql
from originlive.batching import OrderWriter
from originlive.catalog.models import ProductStatus, ShopStatus
from originlive.errors import InvalidInput, OriginliveError
from originlive.orders import stock
from originlive.orders.models import OfferStatus, OrderStatus

log = logging.getLogger(__name__)

PENDING = OrderStatus.PENDING_PAYMENT.value


class OrderPlacer(Protocol):
    async def place(self, cmd: stock.PlaceOrder) -> stock.Placed: ...

    async def close(self) -> None: ...


class WriterPlacer:
    """Each order a job of the order writer (SQLite: the batching thread runs ``place``)."""

    def __init__(self, writer: OrderWriter) -> None:
        self._writer = writer

    async def place(self, cmd: stock.PlaceOrder) -> stock.Placed:
        return await self._writer.run(stock.place, cmd=cmd)

    async def close(self) -> None:
        return None


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


def place_many(
    conn: Connection, cmds: Sequence[stock.PlaceOrder]
) -> list[stock.Placed | OriginliveError]:
    """Decide and record these orders in the caller's transaction, as ``stock.place`` would
    one after another; returns each one's answer or refusal. (Keys must be distinct.)"""
    results: list[stock.Placed | OriginliveError | None] = [None] * len(cmds)
    hashes = [cmd.request_hash for cmd in cmds]

    # 1. Replays and the figures that do not move: prices, regions, rates.
    for buyer, key, order_id, request_hash in rawsql.execute(
        conn,
        "SELECT o.buyer_id, o.idempotency_key, o.id, o.request_hash FROM orders o"
        " JOIN unnest(CAST(:buyers AS INTEGER[]), CAST(:keys AS TEXT[])) AS k(buyer_id, key)"
        " ON o.buyer_id = k.buyer_id AND o.idempotency_key = k.key",
        buyers=[c.buyer_id for c in cmds],
        keys=[c.idempotency_key for c in cmds],
    ).fetchall():
        for i, cmd in enumerate(cmds):
            if (cmd.buyer_id, cmd.idempotency_key) == (buyer, key):
                results[i] = _replayed(conn, order_id, request_hash == hashes[i])
    fresh = [i for i, r in enumerate(results) if r is None]
    if not fresh:
        return _done(results)
    now = max(cmds[i].now for i in fresh)
    offer_ids = sorted({ln.offer_id for i in fresh for ln in cmds[i].lines if ln.offer_id})
    sku_ids = sorted({ln.sku_id for i in fresh for ln in cmds[i].lines if ln.sku_id})
    offers = {
        row[0]: row[1:]
        for row in _rows(
            offer_ids,
            conn,
            "SELECT id, sku_id, shop_id, title, price_cents, currency, per_buyer_limit,"
            " status = :active AND (ends_at IS NULL OR ends_at > :now) FROM flash_offers"
            " WHERE id = ANY(:ids)",
            ids=offer_ids,
            active=OfferStatus.ACTIVE.value,
            now=now,
        )
    }
    skus = {
        row[0]: row[1:]
        for row in _rows(
            sku_ids,
            conn,
            "SELECT skus.id, skus.name, skus.price_cents, skus.currency, products.title,"
            " products.shop_id FROM skus JOIN products ON products.id = skus.product_id"
            " JOIN shops ON shops.id = products.shop_id WHERE skus.id = ANY(:ids)"
            " AND products.status = :active AND shops.status = :approved",
            ids=sku_ids,
            active=ProductStatus.ACTIVE.value,
            approved=ShopStatus.APPROVED.value,
        )
    }
    codes = sorted({cmds[i].address.region_code for i in fresh})
    paths = dict(
        rawsql.execute(
            conn, "SELECT code, path FROM regions WHERE code = ANY(:codes)", codes=codes
        ).fetchall()
    )
    shops = sorted({o[1] for o in offers.values()} | {s[4] for s in skus.values()})
    rates: dict[int, list[tuple[str | None, int]]] = defaultdict(list)
    for shop_id, code, fee in rawsql.execute(
        conn,
        "SELECT shop_id, region_code, fee_cents FROM shipping_rates WHERE shop_id = ANY(:shops)",
        shops=shops,
    ).fetchall():
        rates[shop_id].append((code, fee))

    candidates: list[_Candidate] = []
    for i in fresh:
        try:
            candidates.append(_price(i, cmds[i], offers, skus, paths, rates))
        except OriginliveError as exc:
            results[i] = exc

    # 2. Claim the keys; one taken meanwhile (another process) makes its order a replay.
    if candidates:
        claimed = {
            (buyer, key): order_id
            for order_id, buyer, key in rawsql.execute(
                conn,
                "INSERT INTO orders (buyer_id, shop_id, status, currency, items_cents,"
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
                " RETURNING id, buyer_id, idempotency_key",
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
            ).fetchall()
        }
        taken = []
        for c in candidates:
            order_id = claimed.get((c.cmd.buyer_id, c.cmd.idempotency_key))
            if order_id is None:
                taken.append(c)
            else:
                c.order_id = order_id
        for c in taken:
            replay = stock._replay(conn, c.cmd, hashes[c.index])
            assert replay is not None
            results[c.index] = replay
        candidates = [c for c in candidates if c.order_id]

    # 3. Lock what moves, in the order every rule locks it.
    if candidates:
        _decide(conn, candidates, results, now)
    return _done(results)


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
    now: Any,
) -> None:
    offer_ids = sorted({p.line.offer_id for c in candidates for p in c.priced if p.line.offer_id})
    sku_ids = sorted({p.sku_id for c in candidates for p in c.priced if p.line.offer_id is None})
    buyers = sorted({c.cmd.buyer_id for c in candidates})
    remaining: dict[int, int] = {}
    is_open: dict[int, bool] = {}
    for offer_id, left, open_ in _rows(
        offer_ids,
        conn,
        "SELECT id, remaining, status = :active AND (ends_at IS NULL OR ends_at > :now)"
        " FROM flash_offers WHERE id = ANY(:ids) ORDER BY id FOR UPDATE",
        ids=offer_ids,
        active=OfferStatus.ACTIVE.value,
        now=now,
    ):
        remaining[offer_id], is_open[offer_id] = left, open_
    shelf = dict(
        _rows(
            sku_ids,
            conn,
            "SELECT id, stock FROM skus WHERE id = ANY(:ids) ORDER BY id FOR UPDATE",
            ids=sku_ids,
        )
    )
    held: dict[tuple[int, int], int] = {}
    if offer_ids:
        for offer_id, buyer, quantity in rawsql.execute(
            conn,
            "SELECT offer_id, buyer_id, quantity FROM offer_purchases"
            " WHERE offer_id = ANY(:offers) AND buyer_id = ANY(:buyers)"
            " ORDER BY offer_id, buyer_id FOR UPDATE",
            offers=offer_ids,
            buyers=buyers,
        ).fetchall():
            held[offer_id, buyer] = quantity

    # 4. One after another, as stock.place would: all lines of an order, or none.
    accepted: list[_Candidate] = []
    refused: list[int] = []
    for c in candidates:
        try:
            _take(c, remaining, is_open, shelf, held)
        except OriginliveError as exc:
            results[c.index] = exc
            refused.append(c.order_id)
        else:
            accepted.append(c)

    # 5. Write it all down.
    if refused:
        rawsql.execute(conn, "DELETE FROM orders WHERE id = ANY(:ids)", ids=refused)
    if not accepted:
        return
    taken_offers: dict[int, int] = defaultdict(int)
    taken_skus: dict[int, int] = defaultdict(int)
    counted: dict[tuple[int, int], int] = defaultdict(int)
    for c in accepted:
        for p in c.priced:
            if p.line.offer_id is None:
                taken_skus[p.sku_id] += p.line.quantity
            else:
                taken_offers[p.line.offer_id] += p.line.quantity
                counted[p.line.offer_id, c.cmd.buyer_id] += p.line.quantity
    if taken_offers:
        rawsql.execute(
            conn,
            "UPDATE flash_offers SET remaining = flash_offers.remaining - u.q"
            " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:qs AS INTEGER[])) AS u(id, q)"
            " WHERE flash_offers.id = u.id",
            ids=list(taken_offers),
            qs=list(taken_offers.values()),
        )
        rawsql.execute(
            conn,
            "INSERT INTO offer_purchases (offer_id, buyer_id, quantity)"
            " SELECT * FROM unnest(CAST(:o AS INTEGER[]), CAST(:b AS INTEGER[]),"
            " CAST(:q AS INTEGER[])) ON CONFLICT (offer_id, buyer_id) DO UPDATE"
            " SET quantity = offer_purchases.quantity + excluded.quantity",
            o=[k[0] for k in counted],
            b=[k[1] for k in counted],
            q=list(counted.values()),
        )
    if taken_skus:
        rawsql.execute(
            conn,
            "UPDATE skus SET stock = skus.stock - u.q"
            " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:qs AS INTEGER[])) AS u(id, q)"
            " WHERE skus.id = u.id",
            ids=list(taken_skus),
            qs=list(taken_skus.values()),
        )
    lines = [(c, p) for c in accepted for p in c.priced]
    item_ids = {
        (order_id, offer_id, sku_id): item_id
        for item_id, order_id, offer_id, sku_id in rawsql.execute(
            conn,
            "INSERT INTO order_items (order_id, sku_id, offer_id, title, unit_price_cents,"
            " quantity) SELECT * FROM unnest(CAST(:o AS INTEGER[]), CAST(:s AS INTEGER[]),"
            " CAST(:f AS INTEGER[]), CAST(:t AS TEXT[]), CAST(:p AS BIGINT[]),"
            " CAST(:q AS INTEGER[])) RETURNING id, order_id, offer_id, sku_id",
            o=[c.order_id for c, _ in lines],
            s=[p.sku_id for _, p in lines],
            f=[p.line.offer_id for _, p in lines],
            t=[p.title for _, p in lines],
            p=[p.unit_price_cents for _, p in lines],
            q=[p.line.quantity for _, p in lines],
        ).fetchall()
    }
    event_ids = dict(
        (order_id, event_id)
        for event_id, order_id in rawsql.execute(
            conn,
            "INSERT INTO order_events (order_id, from_status, to_status, actor_id, created_at)"
            " SELECT o, NULL, :status, a, t FROM unnest(CAST(:o AS INTEGER[]),"
            " CAST(:a AS INTEGER[]), CAST(:t AS TIMESTAMPTZ[])) AS u(o, a, t)"
            " RETURNING id, order_id",
            status=PENDING,
            o=[c.order_id for c in accepted],
            a=[c.cmd.buyer_id for c in accepted],
            t=[c.cmd.now for c in accepted],
        ).fetchall()
    )
    for c in accepted:
        items = [
            {
                "id": item_ids[c.order_id, p.line.offer_id, p.sku_id],
                "sku_id": p.sku_id,
                "offer_id": p.line.offer_id,
                "title": p.title,
                "unit_price_cents": p.unit_price_cents,
                "quantity": p.line.quantity,
            }
            for p in c.priced
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


def _rows(needed: Sequence[Any], conn: Connection, sql: str, **params: Any) -> list[Any]:
    """The rows of ``sql``, or none without asking when there is nothing to ask about."""
    return rawsql.execute(conn, sql, **params).fetchall() if needed else []


def _items_cents(c: _Candidate) -> int:
    return sum(p.unit_price_cents * p.line.quantity for p in c.priced)


def _replayed(conn: Connection, order_id: int, same: bool) -> stock.Placed | OriginliveError:
    if not same:
        return stock.IdempotencyMismatch(
            "This Idempotency-Key was used for a different order; use a new key."
        )
    return stock.Placed(order=stock.order_view(conn, order_id=order_id), replayed=True)


def _done(
    results: list[stock.Placed | OriginliveError | None],
) -> list[stock.Placed | OriginliveError]:
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


# The batching placer


_RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure


class BulkPlacer:
    """Each process sends its orders to PostgreSQL in batches (``place_many``), one batch at
    a time on a connection of its own; while one commits, the next gathers."""

    def __init__(self, url: str, *, max_batch: int = 500) -> None:
        self._engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        self._max_batch = max_batch
        self._waiting: list[tuple[stock.PlaceOrder, asyncio.Future[stock.Placed]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def place(self, cmd: stock.PlaceOrder) -> stock.Placed:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[stock.Placed] = asyncio.get_running_loop().create_future()
        self._waiting.append((cmd, future))
        self._wake.set()
        try:
            return await future
        finally:
            del future  # no exception-traceback-future cycle per refusal (see BatchWriter)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._engine.dispose()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
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
                await self._place(batch)

    async def _place(self, batch: list[tuple[stock.PlaceOrder, Any]]) -> None:
        cmds = [cmd for cmd, _ in batch]
        attempt = 0
        while True:
            try:
                async with self._engine.begin() as conn:
                    outcomes = await conn.run_sync(lambda sync: place_many(sync, cmds))
                break
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
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller went away; the order stands regardless
                continue
            if isinstance(outcome, OriginliveError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
