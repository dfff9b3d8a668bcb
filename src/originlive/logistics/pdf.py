"""Printable PDF: headings, lines and tables on A4 or 80-mm receipt paper, in Chinese.

Drawn line by line on ReportLab's canvas in text objects, with a CJK TrueType font embedded
as a subset (WenQuanYi Micro Hei, Debian's ``fonts-wqy-microhei``, unless
``ORIGINLIVE_PDF_FONT`` names another TrueType font): 5,000 rows of a table are about 0.3 s
here, where ReportLab's flowing tables took 2.5 s and WeasyPrint 41 s. Without any such font
the text is set in Adobe's STSong-Light, which PDF readers supply themselves (not embedded).
"""

import io
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

Paper = Literal["a4", "80mm"]
# TrueType fonts with Chinese, in order of preference (ReportLab reads TrueType outlines only,
# so Noto CJK's OpenType/CFF files will not do).
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)
FALLBACK_FONT = "STSong-Light"
# Receipt printers print 72 mm of an 80-mm roll; the page is cut into A4 lengths.
SIZES = {"a4": (210 * mm, 297 * mm, 12 * mm), "80mm": (80 * mm, 297 * mm, 4 * mm)}
_lock = threading.Lock()
_fonts: dict[Path | None, str] = {}


def font_name(path: Path | None = None) -> str:
    """Register the font (the one named, else the first candidate found) once per process
    and return its name for the canvas."""
    with _lock:
        if path not in _fonts:
            found = path if path is not None else next(
                (p for p in FONT_CANDIDATES if p.exists()), None
            )  # fmt: skip
            if found is None:
                pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_FONT))
                _fonts[path] = FALLBACK_FONT
            else:
                name = f"cjk-{len(_fonts)}"
                # A collection's first face (WenQuanYi's .ttc holds Micro Hei and its mono).
                pdfmetrics.registerFont(TTFont(name, str(found), subfontIndex=0))
                _fonts[path] = name
        return _fonts[path]


@dataclass(frozen=True, slots=True)
class Column:
    """A table's column: its heading and share of the line's width."""

    label: str
    share: float
    right: bool = False  # numbers are set flush right


class Sheet:
    """A document drawn from the top of the first page down; a new page when one is full,
    with the table's headings again. Each page is numbered at its foot."""

    def __init__(self, *, paper: Paper, footer: str, font: str, size: float = 8.5) -> None:
        self.width, self.height, self.margin = SIZES[paper]
        self.narrow = paper == "80mm"
        self.footer = footer
        self.font = font
        self.size = size
        self.leading = size * 1.45
        self._buffer = io.BytesIO()
        self._canvas = Canvas(self._buffer, pagesize=(self.width, self.height), pageCompression=1)
        self._canvas.setTitle(footer)
        self._page = 1
        self._start_page()

    @property
    def line_width(self) -> float:
        return float(self.width - 2 * self.margin)

    def _start_page(self) -> None:
        self._y = self.height - self.margin
        self._text = self._canvas.beginText()
        self._text.setFont(self.font, self.size)
        self._font_size = self.size

    def _end_page(self) -> None:
        c = self._canvas
        self._set_size(7)
        self._put(self.margin, self.margin * 0.6, f"{self.footer} · {self._page}")
        c.drawText(self._text)
        c.showPage()
        self._page += 1

    def new_page(self) -> None:
        """Go on on a fresh page (each node's manifest starts one)."""
        if self._y < self.height - self.margin - 1:
            self._end_page()
            self._start_page()

    def _room(self, height: float) -> bool:
        """Make room for ``height`` more: a new page when it would not fit. Whether a new
        page was begun."""
        if self._y - height >= self.margin:
            return False
        self._end_page()
        self._start_page()
        return True

    def _set_size(self, size: float) -> None:
        if size != self._font_size:
            self._text.setFont(self.font, size)
            self._font_size = size

    def _put(self, x: float, y: float, text: str) -> None:
        self._text.setTextOrigin(x, y)
        self._text.textOut(text)

    def fit(self, text: str, width: float, size: float) -> str:
        """The text cut with … to fit the width (no glyph is wider than its size: a text short
        enough is left unmeasured)."""
        if len(text) * size <= width or pdfmetrics.stringWidth(text, self.font, size) <= width:
            return text
        low, high = 0, len(text)
        while low < high:  # the longest start that fits with the ellipsis
            middle = (low + high + 1) // 2
            if pdfmetrics.stringWidth(text[:middle] + "…", self.font, size) <= width:
                low = middle
            else:
                high = middle - 1
        return text[:low] + "…"

    def wrap(self, text: str, width: float, size: float) -> list[str]:
        """The text in lines that fit the width, broken anywhere (Chinese has no spaces)."""
        if len(text) * size <= width or pdfmetrics.stringWidth(text, self.font, size) <= width:
            return [text]
        lines = []
        while text:
            low, high = 1, len(text)
            while low < high:  # the longest start that fits, at least one character
                middle = (low + high + 1) // 2
                if pdfmetrics.stringWidth(text[:middle], self.font, size) <= width:
                    low = middle
                else:
                    high = middle - 1
            lines.append(text[:low])
            text = text[low:]
        return lines

    def line(self, text: str, *, size: float | None = None, indent: float = 0) -> None:
        """Text from the left margin (and the indent), on as many lines as it takes."""
        size = size or self.size
        leading = size * 1.45
        for part in self.wrap(text, self.line_width - indent, size):
            self._room(leading)
            self._y -= leading
            self._set_size(size)
            self._put(self.margin + indent, self._y + size * 0.3, part)

    def gap(self, height: float = 2 * mm) -> None:
        self._y -= height

    def rule(self) -> None:
        """A thin line across the page."""
        self._room(2 * mm)
        self._y -= 1 * mm
        self._canvas.setLineWidth(0.4)
        self._canvas.line(self.margin, self._y, self.width - self.margin, self._y)
        self._y -= 1 * mm

    def _row(self, columns: Sequence[Column], cells: Sequence[str]) -> None:
        x = self.margin
        for column, cell in zip(columns, cells, strict=True):
            width = column.share * self.line_width
            text = self.fit(cell, width - 1.5 * mm, self.size)
            if column.right:
                shown = pdfmetrics.stringWidth(text, self.font, self.size)
                self._put(x + width - 1.5 * mm - shown, self._y + self.size * 0.35, text)
            else:
                self._put(x, self._y + self.size * 0.35, text)
            x += width

    def _header(self, columns: Sequence[Column]) -> None:
        self._y -= self.leading
        self._set_size(self.size)
        self._row(columns, [c.label for c in columns])
        self._canvas.setLineWidth(0.3)
        self._canvas.line(self.margin, self._y, self.width - self.margin, self._y)

    def table(self, columns: Sequence[Column], rows: Iterable[Sequence[str]]) -> None:
        """Rows under the columns' headings, which are set again at the top of each page."""
        self._room(self.leading * 3)
        self._header(columns)
        for cells in rows:
            if self._room(self.leading):
                self._header(columns)
            self._y -= self.leading
            self._set_size(self.size)
            self._row(columns, cells)

    def finish(self) -> bytes:
        """The PDF's bytes."""
        self._end_page()
        self._canvas.save()
        return self._buffer.getvalue()
