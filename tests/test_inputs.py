"""The edge's readers of what strangers send: strict JSON, ASCII numbers, ids, bounded times;
whatever the input, a refusal (ValueError or None), never another exception."""

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.dialects import postgresql, sqlite

from originlive.db import UTCDateTime
from originlive.inputs import MAX_ID, MAX_JSON_DEPTH, Id, Moment, json_value, row_id, whole

EDGES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]


def test_json_is_refused_when_too_deep_too_long_or_not_json() -> None:
    assert json_value('{"type": "like", "count": [[1]]}') == {"type": "like", "count": [[1]]}
    assert json_value("[" * 32 + "]" * 32, max_depth=32) is not None
    for deep in ("[" * 33 + "]" * 33, "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000):
        with pytest.raises(ValueError):
            json_value(deep)
    for broken in (r'"\ud800"', r'{"text": "a\udc00b"}', "\ud800", b"\xff", "NaN", "{", ""):
        with pytest.raises(ValueError):
            json_value(broken)
    with pytest.raises(ValueError):
        json_value("[" + "1," * 100 + "1]", max_bytes=100)
    with pytest.raises(ValueError):  # counted in bytes: 甜 is three
        json_value('"' + "甜" * 40 + '"', max_bytes=100)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_json_of_anything_is_a_value_or_a_value_error(data: str | bytes) -> None:
    with contextlib.suppress(ValueError):
        json_value(data, max_bytes=200, max_depth=4)


@given(st.lists(st.booleans(), max_size=MAX_JSON_DEPTH * 2))
def test_depth_counts_arrays_and_objects_alike(shape: list[bool]) -> None:
    text = "1"
    for is_object in reversed(shape):
        text = f'{{"k": {text}}}' if is_object else f"[{text}]"
    if len(shape) <= MAX_JSON_DEPTH:
        assert json_value(text) is not None
    else:
        with pytest.raises(ValueError, match="deeper than"):
            json_value(text)


def test_whole_numbers_are_ascii_digits_only() -> None:
    assert whole("12") == 12 and whole("0") == 0 and whole("007") == 7
    for text in ("²", "١٢", "１２", "+1", "-1", " 1", "1 ", "1_000", "1.0", "", "9" * 13):
        assert whole(text) is None, text
    assert whole("1000", at_most=999) is None and whole("999", at_most=999) == 999
    assert row_id(str(MAX_ID)) == MAX_ID
    for text in (str(MAX_ID + 1), "0", "2" * 70, "³", "x1"):
        assert row_id(text) is None, text


@given(st.text(max_size=20))
def test_whole_never_raises_and_reads_only_digits(text: str) -> None:
    number = whole(text)
    assert number is None or (text.isascii() and text.isdigit() and number == int(text))


def test_ids_are_within_the_keys_range() -> None:
    ids = TypeAdapter(Id)
    assert ids.validate_python(MAX_ID) == MAX_ID
    for bad in (0, -1, MAX_ID + 1, 2**63, 2**70, "12", 1.0, True):
        with pytest.raises(ValidationError):
            ids.validate_python(bad)


def test_times_need_a_zone_and_a_sane_year() -> None:
    moments = TypeAdapter(Moment)
    for text in ("2000-01-01T00:00:00+14:00", "2999-12-31T23:59:59-14:00", "2026-11-24T20:00Z"):
        assert moments.validate_json(f'"{text}"').utcoffset() is not None
    for text in [*EDGES, "1999-12-31T23:59:59Z", "3000-01-01T00:00:00+08:00"]:
        with pytest.raises(ValidationError, match="years 2000 to 2999"):
            moments.validate_json(f'"{text}"')
    with pytest.raises(ValidationError, match="time zone"):
        moments.validate_json('"2026-11-24T20:00:00"')


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_a_utc_column_refuses_a_time_past_the_calendar_without_overflow(dialect: object) -> None:
    column = UTCDateTime()
    for text in EDGES:
        with pytest.raises(ValueError, match="no UTC time"):
            column.process_bind_param(dt.datetime.fromisoformat(text), dialect)  # type: ignore[arg-type]
