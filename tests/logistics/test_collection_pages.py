"""The collection pages, in-process: the co-operative books a run from a table of growers and
sees its differences; a point's staff weigh on their phone, the hub's staff receive; what was
wrong is shown beside the field and nothing is written; nobody else gets in."""

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Actor
from tests.logistics.test_collection import Collection, _rows, collection  # noqa: F401 (a fixture)


def _table(c: Collection, **top: str) -> dict[str, object]:
    """The booking form: two growers typed in, two rows left empty."""
    point1, point2 = str(c.network.point["id"]), str(c.point2["id"])
    return {
        "sku_id": str(c.network.market.sku_id),
        "hub_id": str(c.network.hub["id"]),
        "collect_on": "2026-09-20",
        "tolerance_percent": "5",
        "note": "",
        "name": ["李大山", "王秀英", "", ""],
        "phone": ["13900000001", "139 0000 0002", "", ""],
        "point_id": [point1, point2, "", ""],
        "kg": ["100", "50.5", "", ""],
    } | top


async def test_the_co_operative_books_a_run_from_the_table_and_sees_it(
    collection: Collection,  # noqa: F811
    db: AsyncSession,
) -> None:
    c = collection
    url = f"/console/shops/{c.network.market.shop_id}/collection"
    page = await c.client.get(url, headers=c.merchant.headers)
    assert page.status_code == 200 and 'id="book-form"' in page.text
    assert page.text.count('name="kg"') == 8 and "武功县物流中心" in page.text
    more = await c.client.post(url, data=_table(c, more="1"), headers=c.merchant.headers)
    assert more.status_code == 200 and more.text.count('name="kg"') == 12
    assert 'value="50.5"' in more.text
    assert await _rows(db) == (0, 0, 0, 0)

    bad = _table(c, collect_on="20.9.2026", tolerance_percent="80")
    bad |= {"kg": ["abc", "50.5", "", "7"], "phone": ["13900000001", "", "", ""]}
    refused = await c.client.post(url, data=bad, headers=c.merchant.headers)
    assert refused.status_code == 422
    for message, where in (
        ("Enter the kilograms expected", "e-kg-0"),
        ("Enter a phone number", "e-phone-1"),
        ("Enter the grower&#39;s name", "e-name-3"),
        ("Choose an open village point", "e-point_id-3"),
    ):
        assert f'id="{where}">{message}' in refused.text, message
    assert "Choose the day the points weigh" in refused.text
    assert "Enter a whole percentage" in refused.text
    assert 'value="abc"' in refused.text  # what was typed, shown again
    twice = _table(c) | {"name": ["李大山", "李大山"], "phone": ["13900000001"] * 2}
    twice |= {"point_id": [str(c.network.point["id"])] * 2, "kg": ["1", "2"]}
    refused = await c.client.post(url, data=twice, headers=c.merchant.headers)
    assert refused.status_code == 422 and "listed twice" in refused.text
    assert 'id="e-name-1"' in refused.text
    assert await _rows(db) == (0, 0, 0, 0)

    booked = await c.client.post(url, data=_table(c), headers=c.merchant.headers)
    assert booked.status_code == 303, booked.text
    run_url = booked.headers["location"].split("?")[0]
    assert await _rows(db) == (1, 2, 0, 0)
    page = await c.client.get(booked.headers["location"], headers=c.merchant.headers)
    assert page.status_code == 200 and "The run is booked" in page.text
    assert "王秀英" in page.text and "50.5 kg" in page.text and "150.5 kg" in page.text
    listed = await c.client.get(url, headers=c.merchant.headers)
    assert run_url.rsplit("/", 1)[1] in listed.text and "2026-09-20" in listed.text

    chinese = await c.client.get(run_url, headers=c.merchant.headers | {"Accept-Language": "zh-CN"})
    assert "按农户" in chinese.text and "50.5 公斤" in chinese.text and "已预约" in chinese.text

    nothing = await c.client.post(f"{run_url}/dispatch", headers=c.merchant.headers)
    assert nothing.status_code == 409 and "nothing to send" in nothing.text
    early = await c.client.post(f"{run_url}/close", headers=c.merchant.headers)
    assert early.status_code == 409 and "Only a run the hub has received" in early.text


async def test_the_points_weigh_and_the_hub_receives_on_their_pages(
    collection: Collection,  # noqa: F811
    db: AsyncSession,
) -> None:
    c, net = collection, collection.network
    run = await c.book()
    url = f"/station/collection/{run['id']}"
    listed = await c.client.get("/station/collection", headers=net.point_staff.headers)
    assert listed.status_code == 200 and f'id="run-{run["id"]}"' in listed.text
    page = await c.client.get(url, headers=net.point_staff.headers)
    assert page.status_code == 200
    assert "李大山" in page.text and "张建国" not in page.text  # only this point's growers
    lee, zhang = run["growers"][0]["id"], run["growers"][2]["id"]

    before = await _rows(db)
    for kg, grade, message in (
        ("-3", "A", "Enter the kilograms weighed"),
        ("60000", "A", "Enter the kilograms weighed"),
        ("98", "D", "Choose the grade"),
    ):
        refused = await c.client.post(
            f"{url}/weighings",
            data={"grower_id": str(lee), "kg": kg, "grade": grade},
            headers=net.point_staff.headers,
        )
        assert refused.status_code == 422 and message in refused.text, (kg, grade)
    wrong = await c.client.post(
        f"{url}/weighings",
        data={"grower_id": str(zhang), "kg": "30", "grade": "A"},
        headers=net.point_staff.headers,
    )
    assert wrong.status_code == 409 and "Choose a grower of this point" in wrong.text
    assert await _rows(db) == before

    weighed = await c.client.post(
        f"{url}/weighings",
        data={"grower_id": str(lee), "kg": "98.5", "grade": "A"},
        headers=net.point_staff.headers,
    )
    assert weighed.status_code == 303, weighed.text
    again = await c.client.post(
        f"{url}/weighings",
        data={"grower_id": str(lee), "kg": "98.5", "grade": "A"},
        headers=net.point_staff.headers,
    )
    assert again.status_code == 409 and "weighed already" in again.text
    shown = await c.client.get(url, headers=net.point_staff.headers)
    assert "98.5 kg" in shown.text

    hub_page = await c.client.get(url, headers=net.hub_staff.headers)
    assert hub_page.status_code == 200 and "still weighing" in hub_page.text
    assert (await c.act(c.merchant, run, "dispatch")).status_code == 200
    receipt = {"point_id": str(net.point["id"]), "received_kg": "98", "note": "一筐压坏"}
    refused = await c.client.post(
        f"{url}/receipts", data=receipt | {"received_kg": "lots"}, headers=net.hub_staff.headers
    )
    assert refused.status_code == 422 and "Enter the kilograms that arrived" in refused.text
    received = await c.client.post(f"{url}/receipts", data=receipt, headers=net.hub_staff.headers)
    assert received.status_code == 303, received.text
    twice = await c.client.post(f"{url}/receipts", data=receipt, headers=net.hub_staff.headers)
    assert twice.status_code == 409 and "recorded already" in twice.text
    seen = await c.client.get(f"/console/collection/{run['id']}", headers=c.merchant.headers)
    assert "Received at the hub" in seen.text and 'data-flag="not_weighed"' in seen.text
    assert 'id="close-form"' in seen.text


async def test_nobody_else_reaches_the_pages(
    collection: Collection,  # noqa: F811
    make_user: Callable[..., Awaitable[Actor]],
) -> None:
    c, net = collection, collection.network
    run = await c.book()
    stranger = await make_user("stranger")
    console = f"/console/collection/{run['id']}"
    station = f"/station/collection/{run['id']}"
    for who in (stranger, c.other_hub_staff, net.station_staff):
        assert (await c.client.get(console, headers=who.headers)).status_code == 404
        assert (await c.client.get(station, headers=who.headers)).status_code == 404
    # Staff who see the run do not run it from the console; the co-operative does not weigh.
    assert (await c.client.get(console, headers=net.point_staff.headers)).status_code == 403
    assert (await c.client.get(station, headers=c.merchant.headers)).status_code == 403
    assert (await c.client.get("/station/collection", headers=stranger.headers)).status_code == 403
    shop_page = f"/console/shops/{net.market.shop_id}/collection"
    assert (await c.client.get(shop_page, headers=stranger.headers)).status_code == 403
    anonymous = await c.client.get(console)
    assert anonymous.status_code in (303, 401)
