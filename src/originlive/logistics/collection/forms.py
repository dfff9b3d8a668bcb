"""What the collection pages share: kilograms typed in forms read as grams, grams shown as
kilograms, and the names of states, grades and flags."""

import re

from originlive.logistics.collection.differences import Flag
from originlive.logistics.collection.models import Grade, RunStatus
from originlive.web.templating import N_
from originlive.web.templating import gettext as _

# Kilograms to the gram: "120", "120.5", "0.125" (a comma for the point too); ASCII digits only.
_KILOGRAMS = re.compile(r"^\s*(\d{1,9})(?:[.,](\d{1,3}))?\s*$", re.ASCII)

STATUS_NAMES = {
    RunStatus.BOOKED: N_("Booked"),
    RunStatus.COLLECTING: N_("Collecting"),
    RunStatus.IN_TRANSIT: N_("On the road"),
    RunStatus.RECEIVED: N_("Received at the hub"),
    RunStatus.CLOSED: N_("Closed"),
}
GRADE_NAMES = {
    Grade.A: N_("Grade A"),
    Grade.B: N_("Grade B"),
    Grade.C: N_("Grade C"),
    Grade.REJECTED: N_("Rejected at the point"),
}
FLAG_NAMES = {
    Flag.SHORT: N_("Short"),
    Flag.OVER: N_("Over"),
    Flag.REJECTED: N_("Rejected at the point"),
    Flag.NOT_WEIGHED: N_("Not weighed"),
    Flag.NOT_RECEIVED: N_("Not received"),
}


def grams(text: str) -> int | None:
    """Kilograms typed in a form as grams: "12.5" → 12500; None if it is not a weight."""
    match = _KILOGRAMS.match(text)
    if match is None:
        return None
    whole, fraction = match.group(1), (match.group(2) or "").ljust(3, "0")
    return int(whole) * 1000 + int(fraction)


def kilos(weight: int | None) -> str:
    """Grams as the pages show them, in kilograms: 12500 → "12.5 kg"; "" for none."""
    if weight is None:
        return ""
    whole, fraction = divmod(abs(weight), 1000)
    sign = "-" if weight < 0 else ""
    number = f"{sign}{whole:,}" + (f".{fraction:03d}".rstrip("0") if fraction else "")
    return _("%(n)s kg", n=number)


def words() -> dict[str, dict[str, str]]:
    """The names of states, grades and flags in the reader's language, for the templates."""
    return {
        "status": {k.value: _(v) for k, v in STATUS_NAMES.items()},
        "grade": {k.value: _(v) for k, v in GRADE_NAMES.items()},
        "flag": {k.value: _(v) for k, v in FLAG_NAMES.items()},
    }
