"""Text from strangers, parsed once at the edge: names, titles, comments and descriptions.

Three kinds, one rule each:

- :func:`one_line` (names, titles, reasons, address lines) and room comments (:func:`comment`):
  NFKC, except that full-width punctuation and superscripts keep their form (Chinese is
  set with "，？（）", and "m²" is not "m2"); then every control, format and invisible
  character is *refused*: a person must recognise the text, and silently dropping a
  character would hide the attempt. Whitespace runs become one space; at least one
  visible character is needed.
- :func:`multi_line` (descriptions, notes): NFC only, so the writer's forms stay; controls
  (tab and line breaks excepted), bidi embeddings, overrides and isolates, surrogates and
  private-use characters are refused, since they change how the text shows; other
  invisible characters (zero-width spaces, BOMs, soft hyphens pasted from elsewhere) carry
  no meaning in free text and are stripped.
- :func:`shop_name_key`: a shop's name as a person sees it, for the unique index.

A zero-width joiner between two emoji (👩‍💻, ❤️‍🔥) is kept: it draws one picture, and chat
is full of them. Unassigned code points are let through: this Python's Unicode database
lags the emoji people type, and an unassigned character shows as a box, not as nothing.
"""

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

ZWJ = "\u200d"
# Embeddings, overrides (U+202A-202E) and isolates (U+2066-2069) reorder what follows them.
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
# Letters and marks that draw nothing, used to fake blank or look-alike names.
_BLANK_LETTERS = [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0]
# Variation selectors (emoji and ideographic variants) and Mongolian free variation
# selectors are allowed in text, but change nothing a reader tells apart.
_SELECTORS = [*range(0x180B, 0x180E), 0x180F, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
_NONCHARACTERS = [
    *range(0xFDD0, 0xFDF0),
    *(p << 16 | low for p in range(17) for low in (0xFFFE, 0xFFFF)),
]
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]  # C0, DEL, C1
_SURROGATES_AND_PRIVATE = [(0xD800, 0xF8FF), (0xF0000, 0x10FFFF)]  # Cs, then Co (and Co planes)
# Format characters (Cf) live in the BMP, plane 1 and plane 14: scanning those is 20 ms.
_FORMAT = [
    c
    for c in (*range(0x20000), *range(0xE0000, 0xE1000))
    if unicodedata.category(chr(c)) == "Cf" and c not in _BIDI
]
_MULTI_LINE_BREAKS = [0x09, 0x0A, 0x0D, 0x2028, 0x2029]


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _ranges(points: Iterable[int]) -> list[tuple[int, int]]:
    """The code points as inclusive runs: ``re`` tries a class's items one by one."""
    runs: list[list[int]] = []
    for point in sorted(set(points)):
        if runs and runs[-1][1] == point - 1:
            runs[-1][1] = point
        else:
            runs.append([point, point])
    return [(a, b) for a, b in runs]


def _class(ranges: Iterable[tuple[int, int]], *, negated: bool = False) -> str:
    items = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    return f"[^{items}\\s]" if negated else f"[{items}]"


class _CharSet:
    """A set of code points to find in text, fast: a regex class of the BMP's (``re`` looks
    those up in a table) and one of the astral planes' (a list of ranges, scanned in turn),
    searched only in text that has astral characters (emoji, mostly)."""

    def __init__(self, points: Iterable[int], spans: Iterable[tuple[int, int]] = ()) -> None:
        ranges = [*_ranges(points), *spans]
        self.bmp = re.compile(_class(r for r in ranges if r[0] <= 0xFFFF))
        self.astral = re.compile(_class(r for r in ranges if r[0] > 0xFFFF))

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        yield from self.bmp.finditer(text)
        if not text.isascii() and _ASTRAL.search(text):
            yield from self.astral.finditer(text)

    def sub(self, replace: Callable[[re.Match[str]], str], text: str) -> str:
        text = self.bmp.sub(replace, text)
        if not text.isascii() and _ASTRAL.search(text):
            text = self.astral.sub(replace, text)
        return text


# One-line text and comments: refused outright.
_REFUSED_IN_LINE = _CharSet(
    [*_CONTROLS, *_BIDI, *_NONCHARACTERS, *_FORMAT, *_BLANK_LETTERS, 0x2028, 0x2029],
    _SURROGATES_AND_PRIVATE,
)
# Multi-line text: refused (tab and line breaks are text there) ...
_REFUSED_IN_TEXT = _CharSet(
    [c for c in [*_CONTROLS, *_BIDI, *_NONCHARACTERS] if c not in _MULTI_LINE_BREAKS],
    _SURROGATES_AND_PRIVATE,
)
# ... and stripped.
_STRIPPED_FROM_TEXT = _CharSet([*_FORMAT, *_BLANK_LETTERS])
# What a reader cannot see, dropped from a shop's name key and from the "visible" check.
_UNSEEN = dict.fromkeys([*_CONTROLS, *_FORMAT, *_BIDI, *_BLANK_LETTERS, *_SELECTORS, 0x2800])
# A character that draws something: in the usual text, the first one.
_SEEN = re.compile(_class(_ranges(_UNSEEN), negated=True))
# Full-width punctuation and superscripts keep their form (NFKC folds them to ASCII).
_KEEP_FORM = re.compile(
    "([\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff60\u00b2\u00b3\u00b9\u2070-\u209f])"
)


class TextRefused(ValueError):
    """Text that breaks a rule; ``kind`` is the pydantic error type the API shows."""

    def __init__(self, kind: str, message: str, **context: Any) -> None:
        super().__init__(message.format(**context))
        self.kind, self.message, self.context = kind, message, context


def _fold(text: str) -> str:
    """NFKC, but full-width punctuation and superscripts keep their form."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text
    parts = _KEEP_FORM.split(text)  # odd places hold the kept characters
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def _emoji_side(char: str) -> bool:
    category = unicodedata.category(char)
    return category == "So" or (category == "Cn" and ord(char) >= 0x1F000)


def _joins_emoji(text: str, at: int) -> bool:
    """Whether the ZWJ at ``at`` joins two emoji (a skin tone or VS16 may end the first)."""
    if at == 0 or at + 1 >= len(text):
        return False
    before = text[at - 1]
    ends_emoji = before == "\ufe0f" or 0x1F3FB <= ord(before) <= 0x1F3FF or _emoji_side(before)
    return ends_emoji and _emoji_side(text[at + 1])


def _refused_char(text: str, pattern: _CharSet) -> str | None:
    """The first character the pattern refuses, joiners inside emoji excepted."""
    for match in pattern.finditer(text):
        if match[0] != ZWJ or not _joins_emoji(text, match.start()):
            return match[0]
    return None


def describe(char: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: a character no one can see, named."""
    return f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()


def _too_long(text: str, max_length: int) -> None:
    if len(text) > max_length:
        message = "should have at most {max_length} characters"
        raise TextRefused("string_too_long", message, max_length=max_length)


def visible(text: str) -> bool:
    """Whether the text shows anything: not only spaces and characters that draw nothing."""
    return _SEEN.search(text) is not None


def _refuse(char: str, what: str) -> TextRefused:
    return TextRefused(f"{what}_character", "may not hold " + _WHAT[what], char=describe(char))


_WHAT = {
    "invisible": "invisible or control characters ({char})",
    "control": "control or direction-override characters ({char})",
}
CHARACTER_ERRORS = frozenset(f"{what}_character" for what in _WHAT)  # the errors' types


def clean_line(text: str, *, max_length: int, blank: bool = False) -> str:
    """One-line text as stored: folded, whitespace collapsed; TextRefused if it breaks a rule."""
    text = _fold(text)
    if (char := _refused_char(text, _REFUSED_IN_LINE)) is not None:
        raise _refuse(char, "invisible")
    text = " ".join(text.split())
    if not blank and not visible(text):
        raise TextRefused("blank_text", "needs at least one visible character")
    _too_long(text, max_length)
    return text


def _strip_unseen(match: re.Match[str]) -> str:
    keep = match[0] == ZWJ and _joins_emoji(match.string, match.start())
    return match[0] if keep else ""


def clean_text(text: str, *, max_length: int) -> str:
    """Multi-line text as stored: NFC, invisible characters stripped; TextRefused if refused."""
    text = unicodedata.normalize("NFC", text)
    if (char := _refused_char(text, _REFUSED_IN_TEXT)) is not None:
        raise _refuse(char, "control")
    text = _STRIPPED_FROM_TEXT.sub(_strip_unseen, text).strip()
    _too_long(text, max_length)
    return text


def comment(said: object, *, max_length: int) -> str | None:
    """A room comment as it is shown, or None if it is not one (the room's hot path)."""
    if not isinstance(said, str) or len(said) > 4 * max_length:
        return None
    try:
        return clean_line(said, max_length=max_length)
    except TextRefused:
        return None


def shop_name_key(name: str) -> str:
    """The name as a person sees it: NFKC, case folded, unseen characters dropped, whitespace
    runs made one space. Two shops may not share it."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_UNSEEN)
    return " ".join(unicodedata.normalize("NFKC", folded).split())


@dataclass(frozen=True)
class _Checked:
    """Pydantic metadata that cleans a string with one of the rules above."""

    clean: Callable[[str], str]
    max_length: int

    def _validate(self, value: str) -> str:
        try:
            return self.clean(value)
        except TextRefused as exc:
            raise PydanticCustomError(exc.kind, exc.message, exc.context) from None

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        # A bound on the raw input before any work on it: folding may shorten text (it
        # composes marks), never by this much.
        raw = core_schema.str_schema(max_length=4 * self.max_length)
        return core_schema.no_info_after_validator_function(self._validate, raw)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["maxLength"] = self.max_length
        return json_schema


def one_line(max_length: int, *, blank: bool = False) -> Any:
    """``Annotated[str, one_line(80)]``: a name, title or address line (``blank``: may be
    empty, as search words may)."""
    return _Checked(partial(clean_line, max_length=max_length, blank=blank), max_length)


def multi_line(max_length: int) -> Any:
    """``Annotated[str, multi_line(2000)]``: a description or note; may be empty."""
    return _Checked(partial(clean_text, max_length=max_length), max_length)
