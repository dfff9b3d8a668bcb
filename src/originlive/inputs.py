"""What strangers send, read once and strictly at the edge: JSON no deeper than a limit, whole
numbers in ASCII digits, ids within the keys' range, times with a zone within a sane window.

A 500 from input is a bug in the parser, not in the input: each reader here answers
``ValueError`` (a 422 once in a schema), or None, for anything it refuses.
"""

import datetime as dt
from typing import Annotated, Any

import pydantic_core
from pydantic import AfterValidator, Field

# Keys are INTEGER columns (32-bit on PostgreSQL): a larger id is bad input, refused before a
# driver sees it (asyncpg raises on the overflow; SQLite would search for it).
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]

MAX_JSON_DEPTH = 32  # nested arrays and objects; none of ours is deeper than 4

EARLIEST_YEAR, LATEST_YEAR = 2000, 2999


def json_value(
    data: str | bytes, *, max_bytes: int | None = None, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """The JSON value of a stranger's text; ``ValueError`` if it is not JSON (NaN, a lone
    surrogate, bytes that are not UTF-8), more than ``max_bytes`` or nested deeper than
    ``max_depth``."""
    if isinstance(data, str):
        if max_bytes is not None and len(data) > max_bytes:  # a character is a byte or more
            raise ValueError(f"more than {max_bytes} bytes")
        data = data.encode()  # UnicodeEncodeError, a ValueError, for a lone surrogate
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"more than {max_bytes} bytes")
    # jiter, in Rust: it refuses escaped lone surrogates, and stops at a depth of its own
    # (about 200) without recursing in Python, where json.loads raises RecursionError.
    value = pydantic_core.from_json(data, allow_inf_nan=False)
    level = [value]  # the values at one depth, from the top down
    for _ in range(max_depth):
        level = [
            child
            for v in level
            if isinstance(v, dict | list)
            for child in (v.values() if isinstance(v, dict) else v)
        ]
        if not level:
            return value
    raise ValueError(f"nested deeper than {max_depth}")


def whole(text: str, *, at_most: int = 10**12 - 1) -> int | None:
    """A whole number written in ASCII digits ("12" → 12); None for anything else: "²" and
    "١٢" (``str.isdigit()`` takes them; ``int()`` refuses the one, reads the other), "+1",
    " 1", "1_000", "" and numbers above ``at_most``."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(at_most)):
        return None
    number = int(text)
    return number if number <= at_most else None


def row_id(text: str) -> int | None:
    """An id typed as text (a path segment, a stream name); None unless it is one."""
    number = whole(text, at_most=MAX_ID)
    return number or None


def bounded_time(value: dt.datetime) -> dt.datetime:
    """The time if it has a zone and falls within the years 2000 to 2999; else ``ValueError``."""
    # Checked on the time as given, before any arithmetic: a year within the window keeps its
    # conversion to UTC (at most a day away) far from the calendar's ends, where it overflows.
    if value.utcoffset() is None:
        raise ValueError("a time needs a time zone, e.g. 2026-11-24T20:00:00+08:00")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"a time must be within the years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return value


# Every time a client sends: with a zone, within the window (a 422 naming the field).
Moment = Annotated[dt.datetime, AfterValidator(bounded_time)]
