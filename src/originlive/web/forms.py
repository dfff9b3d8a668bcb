"""Reading HTML forms into the API's schemas: text to numbers, and what went wrong per field.

A form sends text; the API's schemas are strict (``12.5`` is refused for a count of cents),
so the pages turn text into the right type here and let the same schemas judge the rest.
"""

import datetime as dt
import re
from collections.abc import Mapping

from fastapi import Request
from pydantic import ValidationError

from originlive import inputs
from originlive.accounts.deps import CSRF_FIELD
from originlive.errors import InvalidInput
from originlive.text import CHARACTER_ERRORS
from originlive.web.templating import N_, PLATFORM_TZ
from originlive.web.templating import gettext as _

_YUAN = re.compile(r"^\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$", re.ASCII)  # ASCII digits only
CHECK_FIELD = N_("Check this field.")
# Whatever the field, text refused for a character in it says so (``originlive.text``).
HIDDEN_CHARACTERS = N_(
    "Remove the invisible or control characters (such as zero-width spaces or direction marks)."
)


def cents(text: str) -> int | None:
    """A price typed in yuan as integer fen: "29.9" → 2990; None if it is not a price."""
    match = _YUAN.match(text)
    if match is None:
        return None
    whole, fraction = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(fraction)


def whole(text: str) -> int | None:
    """A count typed in digits, blanks around it allowed: " 12" → 12; None if it is not one
    (see ``inputs.whole``: "²" is not)."""
    return inputs.whole(text.strip())


def field_errors(
    exc: ValidationError, messages: Mapping[str, str], aliases: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each refused field's message, by the form's name for it.

    Args:
        messages: the untranslated message of each form field.
        aliases: the form's name for a schema field where they differ (``price_cents`` is
            typed as ``price``, in yuan).
    """
    errors: dict[str, str] = {}
    for error in exc.errors():
        # "skus.0.price_cents" is the form's "price": the last named part is the field.
        names = [str(part) for part in error["loc"] if isinstance(part, str)]
        field = (aliases or {}).get(names[-1], names[-1]) if names else ""
        message = HIDDEN_CHARACTERS if error["type"] in CHARACTER_ERRORS else None
        errors.setdefault(field, _(message or messages.get(field, CHECK_FIELD)))
    return errors


def error_on(messages: Mapping[str, str], field: str) -> dict[str, str]:
    """The field's message, translated, as the one error of a form."""
    return {field: _(messages[field])}


def refused_field(exc: InvalidInput) -> str:
    """The field a rule refused (an unknown region code, a photo not of this product)."""
    return str(exc.errors[0]["field"]) if exc.errors else ""


async def typed(request: Request) -> dict[str, str]:
    """What the form sent, as text, to show again beside what was wrong (files left out)."""
    form = await request.form()  # parsed once per request: the route's fields came from it
    return {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


def moment(text: str) -> dt.datetime | None:
    """A time typed in a ``datetime-local`` field, on the platform's clock; None if it is not
    one, or not within the API's window (``inputs.bounded_time``)."""
    try:
        typed_in = dt.datetime.fromisoformat(text.strip())
        zoned = typed_in.replace(tzinfo=PLATFORM_TZ) if typed_in.tzinfo is None else typed_in
        return inputs.bounded_time(zoned)  # the API's window, for the pages too
    except ValueError:
        return None
