"""The operator's regions page, in-process: browse to a county, load its villages from the
shipped data or a CSV (a broken one is shown line by line, nothing written); nobody else gets
in, and a form without its token does nothing."""

from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AuditEntry
from originlive.regions.models import Region, RegionLevel
from tests.accounts.test_pages import HTML, csrf_of, login
from tests.conftest import Actor
from tests.regions.conftest import HEADER, csv_row

pytestmark = pytest.mark.usefixtures("villages")

MakeActor = Callable[..., Awaitable[Actor]]
LOAD = "/operator/regions/villages"


async def _villages_of(db: AsyncSession, county: str) -> int:
    query = select(func.count()).where(
        Region.level == RegionLevel.VILLAGE, Region.code.startswith(county)
    )
    return int(await db.scalar(query) or 0)


async def test_an_operator_browses_to_a_county_and_loads_its_villages(
    client: httpx.AsyncClient, make_operator: MakeActor, db: AsyncSession
) -> None:
    operator = await make_operator()
    await login(client, operator.email)

    top = await client.get("/operator/regions")
    assert top.status_code == 200 and 'href="/operator/regions?code=530000"' in top.text
    assert 'href="/operator/regions" aria-current="page">Regions<' in top.text  # the nav
    kunming = await client.get("/operator/regions", params={"code": "530100"})
    assert 'href="/operator/regions?code=530102">五华区<' in kunming.text
    assert "Load the shipped villages" not in kunming.text  # a city with counties
    page = await client.get("/operator/regions", params={"code": "530102"})
    assert "Villages of 五华区" in page.text
    assert "In the tree: 0. In the shipped data: 101." in page.text
    assert ">华山街道<" in page.text  # its townships, to browse into

    token = csrf_of(page)
    loaded = await client.post(LOAD, data={"csrf_token": token, "county_code": "530102"})
    assert loaded.status_code == 200, loaded.text
    assert "101 villages of 五华区 added." in loaded.text
    assert "In the tree: 101. In the shipped data: 101." in loaded.text
    assert await _villages_of(db, "530102") == 101
    again = await client.post(LOAD, data={"csrf_token": token, "county_code": "530102"})
    assert "0 villages of 五华区 added. 101 were there already." in again.text
    township = await client.get("/operator/regions", params={"code": "530102001"})
    assert "Village or community" in township.text

    # A CSV for 安宁市: one village added, one whose township is not in the tree listed.
    csv = HEADER + csv_row("530181001001", "文化路社区居委会") + csv_row("530181999001", "无乡村")
    uploaded = await client.post(
        LOAD,
        data={"csrf_token": token, "county_code": "530181", "source": "csv"},
        files={"csv": ("anning.csv", csv.encode(), "text/csv")},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert "1 village of 安宁市 added." in uploaded.text
    assert "1 village was not added: its township is not in the tree." in uploaded.text
    assert "Line 3: 530181999001 无乡村" in uploaded.text

    audit = await db.scalars(
        select(AuditEntry.target_id).where(AuditEntry.action == "region.load_villages")
    )
    assert list(audit) == ["530102", "530102", "530181"]


async def test_a_broken_csv_is_shown_line_by_line_and_nothing_is_loaded(
    client: httpx.AsyncClient, make_operator: MakeActor, db: AsyncSession
) -> None:
    operator = await make_operator()
    await login(client, operator.email)
    token = csrf_of(await client.get("/operator/regions", params={"code": "530181"}))
    broken = HEADER + csv_row("530181001001", "文化路") + csv_row("530102001001", "") + "1,2\n"
    refused = await client.post(
        LOAD,
        data={"csrf_token": token, "county_code": "530181", "source": "csv"},
        files={"csv": ("anning.csv", broken.encode(), "text/csv")},
    )
    assert refused.status_code == 422
    assert "The file was not loaded, none of it." in refused.text
    assert "Line 3: village 530102001001 is not in county 530181." in refused.text
    assert "Line 4 has 2 columns instead of 6." in refused.text
    gbk = await client.post(
        LOAD,
        data={"csrf_token": token, "county_code": "530181", "source": "csv"},
        files={"csv": ("anning.csv", broken.encode("gbk"), "text/csv")},
    )
    assert gbk.status_code == 422 and "Line 2: the file is not UTF-8 text." in gbk.text
    empty = await client.post(
        LOAD,
        data={"csrf_token": token, "county_code": "530181", "source": "csv"},
        files={"csv": ("empty.csv", b"", "text/csv")},
    )
    assert empty.status_code == 422 and "Choose a CSV file to upload." in empty.text
    assert await _villages_of(db, "530181") == 0

    # Loading is for a county (or a city without counties); an unknown code is not found.
    city = await client.post(LOAD, data={"csrf_token": token, "county_code": "530100"})
    assert city.status_code == 422 and "Villages are loaded a county at a time" in city.text
    unknown = await client.post(LOAD, data={"csrf_token": token, "county_code": "999999"})
    assert unknown.status_code == 404 and "No region has the code 999999." in unknown.text
    shown = await client.get("/operator/regions", params={"code": "999999"}, headers=HTML)
    assert shown.status_code == 404


async def test_only_operators_load_and_only_with_the_forms_token(
    client: httpx.AsyncClient, make_user: MakeActor, make_operator: MakeActor, db: AsyncSession
) -> None:
    anonymous = await client.get("/operator/regions", headers=HTML)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Foperator%2Fregions"

    buyer = await make_user("buyer")
    await login(client, buyer.email)
    page = await client.get("/operator/regions", headers=HTML)
    assert page.status_code == 403
    home = await client.get("/")
    posted = await client.post(LOAD, data={"csrf_token": csrf_of(home), "county_code": "530102"})
    assert posted.status_code == 403
    bearer = await client.post(LOAD, data={"county_code": "530102"}, headers=buyer.headers)
    assert bearer.status_code == 403

    # An operator's cookie without the form's token (a forged cross-site form) does nothing.
    operator = await make_operator()
    client.cookies.clear()
    await login(client, operator.email)
    forged = await client.post(LOAD, data={"county_code": "530102"}, headers=HTML)
    assert forged.status_code == 403
    files = {"csv": ("x.csv", (HEADER + csv_row("530102001001", "x")).encode(), "text/csv")}
    forged_csv = await client.post(
        LOAD, data={"county_code": "530102", "source": "csv"}, files=files
    )
    assert forged_csv.status_code == 403
    assert await _villages_of(db, "530102") == 0
