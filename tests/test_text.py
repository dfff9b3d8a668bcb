"""originlive.text: what names, titles, comments and descriptions may hold, and shops' keys."""

import unicodedata
from typing import Annotated

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from originlive.text import (
    TextRefused,
    clean_line,
    clean_text,
    comment,
    multi_line,
    one_line,
    shop_name_key,
)
from originlive.text import _joins_emoji as joins_emoji

ZWJ = "\u200d"
# Mostly what people type (CJK, letters, emoji, full-width forms), with what they should not.
ANYTHING = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp", "Mn"]),
        st.sampled_from("ＡＢＣａｂｃ１２３，？（）　㍿ﬁ²👩🌾❤️\u200d\ufe0f\u3164\u2800"),
    ),
    max_size=40,
)


def hidden(text: str) -> list[str]:
    """Control, format, surrogate and private-use characters, joiners of emoji excepted."""
    return [
        c
        for i, c in enumerate(text)
        if unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co"}
        and not (c == ZWJ and joins_emoji(text, i))
    ]


@given(ANYTHING)
@example("武功猕猴桃合作社\u200b")
@example("👩\u200d🌾")
def test_accepted_line_text_holds_nothing_hidden_and_is_stable(text: str) -> None:
    try:
        cleaned = clean_line(text, max_length=200)
    except TextRefused:
        return
    assert hidden(cleaned) == []
    assert cleaned == cleaned.strip() and "  " not in cleaned and cleaned
    assert clean_line(cleaned, max_length=200) == cleaned
    assert comment(text, max_length=200) == cleaned


@given(ANYTHING)
def test_accepted_multi_line_text_holds_nothing_hidden_but_line_breaks(text: str) -> None:
    try:
        cleaned = clean_text(text, max_length=200)
    except TextRefused:
        return
    assert set(hidden(cleaned)) <= {"\t", "\n", "\r"}
    assert clean_text(cleaned, max_length=200) == cleaned


@given(ANYTHING)
@example("ＡＢＣ")
@example("ß")
def test_a_shops_key_is_that_of_its_nfkc_and_of_itself(name: str) -> None:
    key = shop_name_key(name)
    assert shop_name_key(unicodedata.normalize("NFKC", name)) == key
    assert shop_name_key(key) == key
    assert not [c for c in key if unicodedata.category(c) in {"Cc", "Cf"}]


@given(ANYTHING, ANYTHING, st.sampled_from("\u200b\u200c\u2060\ufeff\u00ad\ufe0f\u2800 "))
def test_what_cannot_be_seen_does_not_change_a_key(left: str, right: str, unseen: str) -> None:
    assert shop_name_key(left + unseen + right) == shop_name_key(
        left + (" " if unseen == " " else "") + right
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ABC", "ＡＢＣ"),  # full-width
        ("ABC 农场", "abc  农场"),  # case, a run of spaces
        ("ABC 农场", "ABC\u3000农场"),  # an ideographic space
        ("武功猕猴桃合作社", "武功猕猴桃合作社\u200b"),  # the tester's trailing zero-width space
        ("Straße", "STRASSE"),  # case folding, not lowering
        ("ﬁne", "fine"),  # a ligature
    ],
)
def test_look_alikes_share_a_key(a: str, b: str) -> None:
    assert shop_name_key(a) == shop_name_key(b)


@pytest.mark.parametrize(
    "text",
    [
        "店\u200b",  # zero-width space
        "\u202e店",  # right-to-left override
        "店\u2066名",  # an isolate
        "\ufeff店",  # BOM
        "店\u0085",  # C1: next line
        "店\u009b",  # C1: control sequence introducer
        "店\u00ad名",  # soft hyphen
        "店\u2028名",  # a line separator, in one line
        "\u200b",  # nothing to see
        "\u3164",  # a Hangul filler
        "\u2800 ",  # a blank braille cell
        "好\ud800",  # a lone surrogate
        "\ue000",  # private use
        "a\u200db",  # a joiner between letters
        "\u200d👩",  # a joiner with nothing before it
    ],
    ids=ascii,
)
def test_one_line_text_refuses(text: str) -> None:
    with pytest.raises(TextRefused):
        clean_line(text, max_length=80)
    assert comment(text, max_length=200) is None


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("  还有货吗？  ", "还有货吗？"),  # full-width punctuation keeps its form
        ("ＡＢＣ１２３", "ABC123"),
        ("５㎏ 装", "5kg 装"),
        ("100m² 大棚", "100m² 大棚"),  # superscripts too
        ("👨\u200d👩\u200d👧 一家", "👨\u200d👩\u200d👧 一家"),
        ("❤\ufe0f\u200d🔥", "❤\ufe0f\u200d🔥"),
        ("e\u0301", "é"),  # composed
    ],
)
def test_one_line_text_is_folded(typed: str, kept: str) -> None:
    assert clean_line(typed, max_length=80) == kept


def test_multi_line_text_strips_the_invisible_and_refuses_overrides() -> None:
    pasted = "\ufeff第一行\u200b\r\n第二\u00ad行，（全角）\t①"
    assert clean_text(pasted, max_length=100) == "第一行\r\n第二行，（全角）\t①"
    for refused in ("\u202e倒过来", "a\x00b", "\x1b[31m", "\u0085", "\ud800", "\u2066x\u2069"):
        with pytest.raises(TextRefused):
            clean_text(refused, max_length=100)


def test_lengths_are_counted_after_folding() -> None:
    assert clean_line("ａ" * 10, max_length=10) == "a" * 10
    with pytest.raises(TextRefused):
        clean_line("㍿" * 3, max_length=10)  # 株式会社 ×3: twelve characters
    assert comment("x" * 201, max_length=200) is None


def test_the_pydantic_types_name_the_field_and_the_character() -> None:
    class Shop(BaseModel):
        name: Annotated[str, one_line(80)]
        description: Annotated[str, multi_line(100)] = ""

    assert Shop(name=" ＡＢＣ ").name == "ABC"
    with pytest.raises(ValidationError) as refused:
        Shop(name="ABC\u200b")
    (error,) = refused.value.errors()
    assert error["loc"] == ("name",) and error["type"] == "invisible_character"
    assert "U+200B ZERO WIDTH SPACE" in error["msg"]
    with pytest.raises(ValidationError) as blank:
        Shop(name="\u2800")
    assert blank.value.errors()[0]["type"] == "blank_text"
    schema = Shop.model_json_schema()["properties"]
    assert schema["name"]["maxLength"] == 80 and schema["description"]["maxLength"] == 100
