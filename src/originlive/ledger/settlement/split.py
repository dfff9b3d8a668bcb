"""Where a buyer's money goes: the split of an order, as one pure rule.

A captured payment is shared, in fen, between:

- the platform (the county centre that runs it): ``platform_fee_bp`` of the items;
- the shop's co-operative, if it has one: ``coop_share_bp`` of the items;
- each anchor who sold a line under a commission plan: the line's ``commission_bp`` of it, as
  the line recorded it when the order was placed;
- the shop: the rest, shipping included.

Shares are rounded down to the fen and the shop gets what rounding leaves. If the fees and
commissions together would pass the items' value, commissions are cut so that they do not:
the shop's share is never negative.

When the money is released, the delivery nodes that handled each parcel are paid
``station_fee_fen`` per parcel out of the shop's share (shared equally among the nodes that
scanned it; the last of them, nearest the buyer, gets what does not divide).

Refunds take money back from each party in proportion to what it holds of the order
(``allocate``), so a refund always claws back the commission with it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from originlive.ledger.accounts import Holder, account

WHOLE_BP = 10_000
CLEARING = account(Holder.CLEARING, "payments")


@dataclass(frozen=True)
class SplitRule:
    """A deployment's split, or a shop's override of it."""

    platform_fee_bp: int
    station_fee_fen: int
    coop_share_bp: int = 0
    coop_id: int | None = None  # the co-operative (a shop of its own) that gets the share


@dataclass(frozen=True)
class SoldLine:
    """An order line as the split sees it: its value and who sold it for what rate."""

    amount_fen: int
    anchor_id: int | None = None
    commission_bp: int | None = None


@dataclass(frozen=True)
class Shares:
    """An order's money by party, in fen; ``shop`` includes shipping."""

    shop: int
    platform: int
    coop: int
    anchors: dict[int, int]

    @property
    def total(self) -> int:
        return self.shop + self.platform + self.coop + sum(self.anchors.values())


def shares(*, total_fen: int, lines: Sequence[SoldLine], rule: SplitRule) -> Shares:
    """The split of an order of these lines whose buyer paid ``total_fen``."""
    items = sum(line.amount_fen for line in lines)
    platform = items * rule.platform_fee_bp // WHOLE_BP
    coop = items * rule.coop_share_bp // WHOLE_BP if rule.coop_id is not None else 0
    room = max(items - platform - coop, 0)  # what commissions may take at most
    anchors: dict[int, int] = {}
    for line in lines:
        if line.anchor_id is None or not line.commission_bp:
            continue
        earned = min(line.amount_fen * line.commission_bp // WHOLE_BP, room)
        room -= earned
        if earned:
            anchors[line.anchor_id] = anchors.get(line.anchor_id, 0) + earned
    shop = total_fen - platform - coop - sum(anchors.values())
    return Shares(shop, platform, coop, anchors)


def pending_legs(*, shop_id: int, shares: Shares, rule: SplitRule) -> dict[str, int]:
    """The pending accounts a capture credits, by name (zero shares left out)."""
    legs = {
        account(Holder.SHOP, "pending", shop_id): shares.shop,
        account(Holder.PLATFORM, "pending"): shares.platform,
    }
    if rule.coop_id is not None:
        legs[account(Holder.COOP, "pending", rule.coop_id)] = shares.coop
    for anchor_id, earned in shares.anchors.items():
        legs[account(Holder.ANCHOR, "pending", anchor_id)] = earned
    return {name: fen for name, fen in legs.items() if fen}


def available(pending_account: str) -> str:
    """The account a pending account's money is released to: ``shop:3:pending`` → ``shop:3:
    available``."""
    return pending_account.rsplit(":", 1)[0] + ":available"


def station_fees(*, parcels: Sequence[Sequence[int]], fee_fen: int) -> dict[int, int]:
    """The fee per parcel shared among the nodes that handled it (in the order they first
    scanned it); the last node gets what does not divide. Returns fen by node id."""
    fees: dict[int, int] = {}
    for nodes in parcels:
        if not nodes or fee_fen <= 0:
            continue
        each, left = divmod(fee_fen, len(nodes))
        for i, node_id in enumerate(nodes):
            fees[node_id] = fees.get(node_id, 0) + each + (left if i == len(nodes) - 1 else 0)
    return fees


def allocate(amount: int, holdings: Mapping[str, int]) -> dict[str, int]:
    """``amount`` fen taken from accounts in proportion to what each holds (largest
    remainders first; ties by name), never more than an account holds while ``amount`` is at
    most their sum. Accounts holding nothing give nothing."""
    held = {name: fen for name, fen in holdings.items() if fen > 0}
    whole = sum(held.values())
    if whole == 0 or amount <= 0:
        return {}
    amount = min(amount, whole)
    taken = {name: amount * fen // whole for name, fen in held.items()}
    left = amount - sum(taken.values())
    by_remainder = sorted(held, key=lambda name: (-(amount * held[name] % whole), name))
    for name in by_remainder[:left]:
        taken[name] += 1
    return {name: fen for name, fen in taken.items() if fen}
