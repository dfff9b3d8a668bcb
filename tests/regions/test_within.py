"""``regions.within``: the codes at and below a region, found through the path index."""

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.regions import service
from originlive.regions.models import Region


async def test_within_is_the_subtree_and_sqlite_reads_it_from_the_index(db: AsyncSession) -> None:
    for code in ("530000", "530100", "441900", "610431"):
        region = await service.get(db, code=code)
        assert region is not None
        found = set(
            await db.scalars(select(Region.code).where(service.within(region, Region.code)))
        )
        everything = (await db.execute(select(Region.code, Region.path))).all()
        assert found == {c for c, path in everything if path.startswith(region.path)}
        assert code in found and len(found) > 1
    if db.bind.dialect.name == "sqlite":
        yunnan = await service.get(db, code="530000")
        assert yunnan is not None
        query = select(Region.code).where(service.within(yunnan, Region.code))
        compiled = query.compile(db.bind, compile_kwargs={"literal_binds": True})
        plan = (await db.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
        assert any("USING INDEX ix_regions_path" in str(row) for row in plan), plan
