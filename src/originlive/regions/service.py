"""Rules of regions: look-ups, subtrees, search, the official data and operator-added nodes."""

import csv
from collections.abc import Sequence
from importlib import resources

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.errors import Conflict, InvalidInput, NotFound
from originlive.regions.models import Region, RegionLevel

DATA_FILE = "cn_regions.csv"

# Operators may add the two levels below a county; the official data stops at counties.
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


def within(region: Region, column: ColumnElement[str]) -> ColumnElement[bool]:
    """A condition true for the codes of the region and every region below it."""
    subtree = select(Region.code).where(Region.path.startswith(region.path, autoescape=True))
    return column.in_(subtree)


async def ancestors(session: AsyncSession, *, region: Region) -> list[Region]:
    """From the province down to the region itself."""
    codes = [c for c in region.path.split("/") if c]
    rows = {r.code: r for r in await session.scalars(select(Region).where(Region.code.in_(codes)))}
    return [rows[c] for c in codes if c in rows]


async def create(session: AsyncSession, *, code: str, name: str, parent_code: str) -> Region:
    """Add a township under a county or a village under a township (operators only)."""
    parent = await get_or_404(session, code=parent_code, field="parent_code")
    level = _ADDABLE_BELOW.get(parent.level)
    if level is None and parent.level is RegionLevel.PREFECTURE:
        # Dongguan, Zhongshan, Danzhou: cities with towns directly below them, no counties.
        has_counties = await session.scalar(
            select(Region.code).where(Region.parent_code == parent.code).limit(1)
        )
        level = None if has_counties else RegionLevel.TOWNSHIP
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


def _official_rows() -> list[dict[str, str]]:
    data = resources.files("originlive.regions").joinpath("data", DATA_FILE)
    with data.open(encoding="utf-8") as f:
        # The file opens with a comment naming its source (scripts/generate_regions.py).
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


async def load_official(session: AsyncSession) -> int:
    """Insert the shipped regions that are missing; returns how many were added. Idempotent."""
    rows = _official_rows()
    by_code = {r["code"]: r for r in rows}
    existing = set(await session.scalars(select(Region.code).where(Region.official.is_(True))))

    def path_of(code: str) -> str:
        parts = []
        current: str | None = code
        while current:
            parts.append(current)
            current = by_code[current]["parent_code"] or None
        return "".join(f"{c}/" for c in reversed(parts))

    # Parents before children, so the foreign key holds row by row.
    rows.sort(key=lambda r: (RegionLevel(r["level"]).depth, r["code"]))
    missing = [
        {
            "code": r["code"],
            "name": r["name"],
            "level": RegionLevel(r["level"]),
            "parent_code": r["parent_code"] or None,
            "path": path_of(r["code"]),
            "official": True,
        }
        for r in rows
        if r["code"] not in existing
    ]
    for start in range(0, len(missing), 1000):
        await session.execute(insert(Region), missing[start : start + 1000])
    return len(missing)
