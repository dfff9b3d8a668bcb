"""The rule for placing an order, once: a pure decision over the figures an adapter has read.

Every way an order is placed (a buyer's press through the API or the fast path, a batch of the
order writer on SQLite, a batch of the bulk placer on PostgreSQL, the demo) reads the figures
the rule needs and asks this module, which touches no database:

1. ``price`` checks a request against the *terms* (``Terms``): each offer's price, limit and
   whether it is on sale, each SKU on sale, the delivery region and the shop's shipping rates.
   It answers with a ``Decided`` order (what each line costs) or raises its refusal.
2. ``take`` checks a priced order against the *units* (``Units``): what is left of each offer,
   each SKU's stock and each buyer's count on each offer. It takes all the order's lines or
   none, and leaves the figures as the next order in the batch must see them.

``decide`` does both for requests one after another, which is what one-by-one placing means:
a batch of one is one call. The adapters in ``bulk`` read the figures for a whole batch with a
few statements and write the accepted orders with a few more; their writes keep conditions
(``remaining >= q``, ``stock >= q``, the per-buyer limit) only as a backstop, and the Redis
gate's script (``gate``) is an early copy of ``take`` for offers, tested to answer alike.
"""

import functools
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pydantic_core

from originlive.errors import InvalidInput, OriginliveError
from originlive.orders.models import OrderStatus

PENDING = OrderStatus.PENDING_PAYMENT.value


class SoldOut(OriginliveError):
    status = 409
    title = "Sold out"
    slug = "sold-out"


class OverLimit(OriginliveError):
    status = 409
    title = "Over the buyer's limit"
    slug = "over-limit"


class OfferEnded(OriginliveError):
    status = 409
    title = "Offer ended"
    slug = "offer-ended"


class IdempotencyMismatch(OriginliveError):
    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was used for a different order; use a new key.")


# The request


@dataclass(frozen=True)
class Line:
    """One requested line: an offer or a plain SKU, and how many."""

    offer_id: int | None
    sku_id: int | None
    quantity: int


@dataclass(frozen=True)
class Address:
    name: str
    phone: str
    region_code: str
    detail: str


@dataclass(frozen=True)
class PlaceOrder:
    """Everything an order needs, checked for shape by the API already."""

    buyer_id: int
    idempotency_key: str
    lines: tuple[Line, ...]
    address: Address
    now: datetime
    ttl: timedelta

    @property
    def request_hash(self) -> str:
        """SHA-256 of the request's content, to tell a retry from a reuse of the key."""
        body = {
            "lines": [[ln.offer_id, ln.sku_id, ln.quantity] for ln in self.lines],
            "address": [
                self.address.name,
                self.address.phone,
                self.address.region_code,
                self.address.detail,
            ],
        }
        return hashlib.sha256(pydantic_core.to_json(body)).hexdigest()

    @property
    def key(self) -> tuple[int, str]:
        """The buyer and the Idempotency-Key: one order each (invariant 2)."""
        return self.buyer_id, self.idempotency_key


@dataclass(frozen=True)
class Placed:
    """The order as the API shows it (``schemas.Order``'s fields), and whether it is a replay."""

    order: dict[str, Any]
    replayed: bool


# The figures an adapter reads


@dataclass(frozen=True)
class Attribution:
    """Who sold a line: the live session and its anchor, and when the anchor sells another
    shop's goods the commission plan and its rate (basis points) at the moment of the order."""

    live_session_id: int | None
    anchor_id: int | None
    plan_id: int | None = None
    commission_bp: int | None = None

    @property
    def row(self) -> tuple[int | None, int | None, int | None, int | None]:
        """The order line's attribution columns, in ``ATTRIBUTION_COLUMNS``' order."""
        return (self.live_session_id, self.anchor_id, self.plan_id, self.commission_bp)


NOBODY = Attribution(None, None)  # a line nobody sold for a commission: a plain SKU's
ATTRIBUTION_COLUMNS = ("live_session_id", "anchor_id", "plan_id", "commission_bp")


@dataclass(frozen=True)
class OfferTerms:
    """An offer as it prices a line: its SKU, shop, title, price, limit, whether it is on
    sale (``stock.OFFER_ON_SALE``), and who sells it."""

    sku_id: int
    shop_id: int
    title: str
    price_cents: int
    currency: str
    per_buyer_limit: int
    on_sale: bool
    attribution: Attribution = NOBODY


@dataclass(frozen=True)
class SkuTerms:
    """A SKU on sale (``stock.SKU_ON_SALE``), as it prices a plain line."""

    shop_id: int
    title: str
    price_cents: int
    currency: str


@dataclass
class Terms:
    """What prices a batch's requests: the offers and SKUs they name (SKUs only if on sale),
    the paths of their delivery regions and their shops' shipping rates."""

    offers: dict[int, OfferTerms] = field(default_factory=dict)
    skus: dict[int, SkuTerms] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    rates: dict[int, list[tuple[str | None, int]]] = field(default_factory=dict)


@dataclass
class Units:
    """What a batch takes from: units left on each offer and whether it is still open, each
    SKU's stock, and each buyer's units held of each offer. ``take`` moves them."""

    remaining: dict[int, int] = field(default_factory=dict)
    open: dict[int, bool] = field(default_factory=dict)
    shelf: dict[int, int] = field(default_factory=dict)
    held: dict[tuple[int, int], int] = field(default_factory=dict)


# The decision


@dataclass(frozen=True)
class PricedLine:
    line: Line
    sku_id: int
    title: str
    unit_price_cents: int
    per_buyer_limit: int | None
    attribution: Attribution = NOBODY


@dataclass
class Decided:
    """A request priced (and, once ``take`` has passed it, accepted): the order to write."""

    index: int
    cmd: PlaceOrder
    lines: list[PricedLine]
    shop_id: int
    currency: str
    shipping_cents: int

    @functools.cached_property
    def items_cents(self) -> int:
        return sum(p.unit_price_cents * p.line.quantity for p in self.lines)


Outcome = Placed | OriginliveError


def price(index: int, cmd: PlaceOrder, terms: Terms) -> Decided:
    """The request priced by the terms, or its refusal raised."""
    lines = [_price_line(line, terms) for line in cmd.lines]
    shops = {shop for shop, _currency, _p in lines}
    currencies = {currency for _shop, currency, _p in lines}
    if len(shops) != 1 or len(currencies) != 1:
        raise InvalidInput("An order holds items of one shop, in one currency.", field="items")
    shop_id = shops.pop()
    path = terms.paths.get(cmd.address.region_code)
    if path is None:
        raise unknown_region(cmd.address.region_code)
    fee = shipping_fee(path, terms.rates.get(shop_id, []))
    return Decided(index, cmd, [p for _s, _c, p in lines], shop_id, currencies.pop(), fee)


def _price_line(line: Line, terms: Terms) -> tuple[int, str, PricedLine]:
    if line.offer_id is not None:
        offer = terms.offers.get(line.offer_id)
        if offer is None:
            raise InvalidInput(f"No offer {line.offer_id}.", field="items")
        if not offer.on_sale:
            raise OfferEnded(f"Offer {line.offer_id} has ended.")
        if line.quantity > offer.per_buyer_limit:
            raise OverLimit(f"At most {offer.per_buyer_limit} per buyer.")
        priced = PricedLine(
            line,
            offer.sku_id,
            offer.title,
            offer.price_cents,
            offer.per_buyer_limit,
            offer.attribution,
        )
        return offer.shop_id, offer.currency, priced
    assert line.sku_id is not None
    sku = terms.skus.get(line.sku_id)
    if sku is None:
        raise InvalidInput(f"No SKU {line.sku_id} on sale.", field="items")
    return (
        sku.shop_id,
        sku.currency,
        PricedLine(line, line.sku_id, sku.title, sku.price_cents, None),
    )


def take(order: Decided, units: Units) -> None:
    """Take every line's units from ``units`` or raise, leaving them untouched: all or none.

    Lines are checked in the order every rule locks rows in (``lock_order``); for an offer
    line the buyer's count is checked before the units left, as the database's statements
    and the gate's script do.
    """
    buyer = order.cmd.buyer_id
    for p in sorted(order.lines, key=lock_order):
        q = p.line.quantity
        if p.line.offer_id is None:
            if units.shelf.get(p.sku_id, 0) < q:
                raise SoldOut(f"Not enough of {p.title} in stock.")
            continue
        offer_id = p.line.offer_id
        if units.held.get((offer_id, buyer), 0) + q > (p.per_buyer_limit or 0):
            raise OverLimit(f"At most {p.per_buyer_limit} of this offer per buyer.")
        if not units.open.get(offer_id, False) or units.remaining.get(offer_id, 0) < q:
            # Ended between pricing and taking: sold out, as the database's update says.
            raise SoldOut(f"{p.title} is sold out.")
    for p in order.lines:
        q = p.line.quantity
        if p.line.offer_id is None:
            units.shelf[p.sku_id] -= q
        else:
            units.remaining[p.line.offer_id] -= q
            held = (p.line.offer_id, buyer)
            units.held[held] = units.held.get(held, 0) + q


def lock_order(p: PricedLine) -> tuple[bool, int, int]:
    """Offers by id, then SKUs by id: the order in which every rule takes its row locks."""
    return (p.line.offer_id is None, p.line.offer_id or 0, p.sku_id)


def price_all(
    cmds: Sequence[PlaceOrder], outcomes: list[Outcome | None], terms: Terms
) -> list[Decided]:
    """The requests not yet answered, priced; those that cannot be get their refusal."""
    priced: list[Decided] = []
    for i, cmd in enumerate(cmds):
        if outcomes[i] is None:
            try:
                priced.append(price(i, cmd, terms))
            except OriginliveError as exc:
                outcomes[i] = exc
    return priced


def take_all(orders: list[Decided], outcomes: list[Outcome | None], units: Units) -> list[Decided]:
    """The orders whose units ``take`` finds, one after another; the others get their refusal."""
    accepted: list[Decided] = []
    for order in orders:
        try:
            take(order, units)
        except OriginliveError as exc:
            outcomes[order.index] = exc
        else:
            accepted.append(order)
    return accepted


def decide(
    cmds: Sequence[PlaceOrder], outcomes: list[Outcome | None], terms: Terms, units: Units
) -> list[Decided]:
    """Price and take the unanswered requests one after another; returns the accepted."""
    return take_all(price_all(cmds, outcomes, terms), outcomes, units)


@dataclass
class Taken:
    """What accepted orders take, summed: units per offer, per SKU (plain lines), and per
    (offer, buyer) for the buyers' counts."""

    offers: dict[int, int]
    skus: dict[int, int]
    counted: dict[tuple[int, int], int]


def taken(accepted: Sequence[Decided]) -> Taken:
    offers: dict[int, int] = defaultdict(int)
    skus: dict[int, int] = defaultdict(int)
    counted: dict[tuple[int, int], int] = defaultdict(int)
    for order in accepted:
        for p in order.lines:
            if p.line.offer_id is None:
                skus[p.sku_id] += p.line.quantity
            else:
                offers[p.line.offer_id] += p.line.quantity
                counted[p.line.offer_id, order.cmd.buyer_id] += p.line.quantity
    return Taken(dict(offers), dict(skus), dict(counted))


# Shipping


def unknown_region(region_code: str) -> InvalidInput:
    return InvalidInput(f"Unknown region code {region_code!r}.", field="address.region_code")


def shipping_fee(path: str, rates: Sequence[tuple[str | None, int]]) -> int:
    """The fee to the region at ``path`` by the shop's rates: the deepest matching region's,
    else the default (region None), else free."""
    depth = {code: i for i, code in enumerate(c for c in path.split("/") if c)}
    matching = [
        (-1 if code is None else depth[code], fee)
        for code, fee in rates
        if code is None or code in depth
    ]
    return int(max(matching)[1]) if matching else 0


# The answer


def attributed(attribution: Attribution | None) -> dict[str, int | None]:
    """A line's (or an offer's) attribution as its columns and the API's fields."""
    return dict(zip(ATTRIBUTION_COLUMNS, (attribution or NOBODY).row, strict=True))


def placed(order: Decided, *, order_id: int, item_ids: Sequence[int], event_id: int) -> Placed:
    """A just-placed order as the API shows it (``schemas.Order``'s fields), without reading
    it back: on the hot path that would cost as much as placing it."""
    cmd = order.cmd
    items = [
        {
            "id": item_id,
            "sku_id": p.sku_id,
            "offer_id": p.line.offer_id,
            "title": p.title,
            "unit_price_cents": p.unit_price_cents,
            "quantity": p.line.quantity,
            "live_session_id": p.attribution.live_session_id,
            "anchor_id": p.attribution.anchor_id,
            "plan_id": p.attribution.plan_id,
            "commission_bp": p.attribution.commission_bp,
        }
        for item_id, p in zip(item_ids, order.lines, strict=True)
    ]
    items_cents = order.items_cents
    view = {
        "id": order_id,
        "status": PENDING,
        "buyer_id": cmd.buyer_id,
        "shop_id": order.shop_id,
        "currency": order.currency,
        "items_cents": items_cents,
        "shipping_cents": order.shipping_cents,
        "total_cents": items_cents + order.shipping_cents,
        "refunded_cents": 0,
        "address": {
            "name": cmd.address.name,
            "phone": cmd.address.phone,
            "region_code": cmd.address.region_code,
            "detail": cmd.address.detail,
        },
        "items": items,
        "events": [
            {
                "id": event_id,
                "from_status": None,
                "to_status": PENDING,
                "actor_id": cmd.buyer_id,
                "note": None,
                "created_at": cmd.now,
            }
        ],
        "created_at": cmd.now,
        "expires_at": cmd.now + cmd.ttl,
        "updated_at": cmd.now,
    }
    return Placed(order=view, replayed=False)
