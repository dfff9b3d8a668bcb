"""Ledger account names, built and parsed in one place: ``shop:12:pending``, ``platform:fees``.

A holder with an id (a shop, an anchor, a station, a co-operative) has accounts
``holder:id:bucket``; the platform's own accounts are ``holder:bucket`` (``platform:fees``,
``clearing:payments``, ``payouts:sandbox``). Amounts are signed and an account's balance is the
sum of its postings: money that came in is the negative balance of ``clearing:*``, money held
is the balance of every account but ``clearing:*`` and ``payouts:*``, money paid out the
balance of ``payouts:*`` (so money in = money held + money paid out when the book balances).
"""

import enum
import functools
import re
from dataclasses import dataclass

from originlive.errors import InvalidInput


class Holder(enum.StrEnum):
    SHOP = "shop"
    ANCHOR = "anchor"
    STATION = "station"
    COOP = "coop"
    PLATFORM = "platform"
    CLEARING = "clearing"  # money in from buyers, through a payment provider
    PAYOUTS = "payouts"  # money paid out, one account per payout provider

    @property
    def has_id(self) -> bool:
        """Whether the holder's accounts name one of many (a shop's) or the platform's own."""
        return self in (Holder.SHOP, Holder.ANCHOR, Holder.STATION, Holder.COOP)


# Buckets are the settlement's words (pending, available, fees, share, a provider's name).
_BUCKET = re.compile(r"[a-z][a-z0-9_]{0,23}")
MAX_LENGTH = 64  # the column's width; the longest name the grammar allows is shorter


@dataclass(frozen=True)
class Account:
    holder: Holder
    bucket: str
    holder_id: int | None = None

    def __str__(self) -> str:
        if self.holder_id is None:
            return f"{self.holder}:{self.bucket}"
        return f"{self.holder}:{self.holder_id}:{self.bucket}"


def account(holder: Holder, bucket: str, holder_id: int | None = None) -> str:
    """The name of a holder's account: ``account(Holder.SHOP, "pending", 12)`` is
    ``shop:12:pending``; refused if the parts do not make a name ``parse`` accepts."""
    name = str(Account(holder, bucket, holder_id))
    parse(name)
    return name


# Cached: a batch names the same few accounts again and again (a refusal is not cached).
@functools.lru_cache(maxsize=65536)
def parse(name: str) -> Account:
    """The parts of an account's name, or ``InvalidInput`` if it is not one."""
    parts = name.split(":")
    holder = Holder(parts[0]) if parts[0] in Holder._value2member_map_ else None
    if holder is None or len(parts) != (3 if holder.has_id else 2):
        raise InvalidInput(f"{name!r} is not a ledger account.", field="account")
    if not _BUCKET.fullmatch(parts[-1]):
        raise InvalidInput(f"{name!r} has no valid bucket.", field="account")
    if not holder.has_id:
        return Account(holder, parts[1])
    digits = parts[1]
    # isdigit() would accept "²"; an id is ASCII digits without a leading zero.
    if not (digits.isascii() and digits.isdigit() and digits[0] != "0" and len(digits) <= 18):
        raise InvalidInput(f"{name!r} has no valid id.", field="account")
    return Account(holder, parts[2], int(digits))
