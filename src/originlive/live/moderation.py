"""Banned words: every word of the list looked for in one pass over a comment (Aho-Corasick).

Comments are folded before the search (full-width forms, case). Words with Latin letters are
looked for at the start of a word, over the text with its punctuation made spaces: "bitch"
is found in "Bitches!" but not in "rabbit chase". Other words (Chinese) are looked for in the
text with everything but letters and digits taken out, so that "加 微-信" is "加微信".
"""

import re
import unicodedata
from pathlib import Path

import ahocorasick

DEFAULT_LIST = Path(__file__).with_name("data") / "banned_words.txt"

_LATIN = re.compile(r"[a-z]")
_SEPARATORS = re.compile(r"[\W_]+")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _spaced(text: str) -> str:
    return " " + _SEPARATORS.sub(" ", text).strip() + " "


def _compact(text: str) -> str:
    return _SEPARATORS.sub("", text)


def _automaton(words: set[str]) -> ahocorasick.Automaton | None:
    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton


class BannedWords:
    """The words no comment may contain, in Chinese or English."""

    def __init__(self, words: list[str]) -> None:
        folded = {_fold(w).strip() for w in words if w.strip()}
        latin = {w for w in folded if _LATIN.search(w)}
        self._latin = _automaton({_spaced(w).rstrip() for w in latin})
        self._other = _automaton({_compact(w) for w in folded - latin} - {""})

    @classmethod
    def from_file(cls, path: Path) -> "BannedWords":
        """One word or phrase a line; blank lines and lines starting with # are skipped."""
        lines = path.read_text(encoding="utf-8").splitlines()
        return cls([ln for ln in lines if not ln.startswith("#")])

    def find(self, text: str) -> str | None:
        """The first banned word in the text, or None."""
        folded = _fold(text)
        for automaton, form in ((self._other, _compact), (self._latin, _spaced)):
            if automaton is not None:
                for _end, word in automaton.iter(form(folded)):
                    return str(word).strip()
        return None
