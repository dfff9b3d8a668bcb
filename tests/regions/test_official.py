"""The shipped tree down to townships: there after migrate, loaded again without change, and an
operator's township with an official code made official rather than a clash."""

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.regions import service as regions
from originlive.regions.models import Region, RegionLevel

# 安宁市 (Kunming, Yunnan) and its first township.
COUNTY, TOWNSHIP, TOWNSHIP_NAME = "530181", "530181001", "连然街道"


async def test_townships_are_there_after_migrate(client: httpx.AsyncClient) -> None:
    anning = (await client.get("/api/v1/regions", params={"parent": COUNTY})).json()
    assert len(anning) == 9
    assert {"code": TOWNSHIP, "name": TOWNSHIP_NAME, "level": "township",
            "parent_code": COUNTY} in anning  # fmt: skip
    # Dongguan's towns sit directly below the city, which has no counties.
    dongguan = (await client.get("/api/v1/regions", params={"parent": "441900"})).json()
    assert len(dongguan) == 36 and {r["level"] for r in dongguan} == {"township"}
    changan = (await client.get("/api/v1/regions/441900119")).json()
    assert changan == {"code": "441900119", "name": "长安镇", "level": "township",
                       "parent_code": "441900"}  # fmt: skip
    # Zhongshan and Danzhou likewise.
    for city in ("442000", "460400"):
        towns = (await client.get("/api/v1/regions", params={"parent": city})).json()
        assert towns and all(r["level"] == "township" for r in towns), city


async def test_the_shipped_tree_is_whole_and_loads_once(db: AsyncSession) -> None:
    by_level = select(Region.level, func.count()).group_by(Region.level)
    counts = {level: count for level, count in await db.execute(by_level)}
    assert counts[RegionLevel.TOWNSHIP] == 41352
    assert sum(counts.values()) == 44700
    # Every township's path runs from its province down through its parent.
    stray = await db.scalar(
        select(func.count())
        .select_from(Region)
        .where(Region.level == RegionLevel.TOWNSHIP, Region.path.not_like("%/" + Region.code + "/"))
    )
    assert stray == 0
    assert await regions.load_official(db) == 0  # idempotent: nothing is missing


async def test_an_operators_township_with_an_official_code_becomes_official(
    db: AsyncSession, client: httpx.AsyncClient, make_operator
) -> None:
    # A deployment from before townships shipped, where an operator typed one in.
    await db.execute(delete(Region).where(Region.code == TOWNSHIP))
    await db.commit()
    try:
        operator = await make_operator()
        made = await client.post(
            "/api/v1/regions",
            json={"code": TOWNSHIP, "name": "连然街道办", "parent_code": COUNTY},
            headers=operator.headers,
        )
        assert made.status_code == 201, made.text
        assert await regions.load_official(db) == 1
        await db.commit()
        township = await db.get(Region, TOWNSHIP, populate_existing=True)
        assert township is not None and township.official
        assert township.name == "连然街道办"  # the operator's name is kept
        assert township.path == f"530000/530100/{COUNTY}/{TOWNSHIP}/"
        assert await regions.load_official(db) == 0
        # Now that the code is taken, typing it in again is a conflict, as for any code.
        again = await client.post(
            "/api/v1/regions",
            json={"code": TOWNSHIP, "name": "x", "parent_code": COUNTY},
            headers=operator.headers,
        )
        assert again.status_code == 409
    finally:
        # The tree as shipped, for the tests after this one (empty_database keeps official rows).
        await db.rollback()
        await regions.load_official(db)
        rename = update(Region).where(Region.code == TOWNSHIP)
        await db.execute(rename.values(name=TOWNSHIP_NAME, official=True))
        await db.commit()
