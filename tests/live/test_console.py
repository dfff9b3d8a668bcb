"""The console's live sessions, in-process: schedule one, read the RTMP address and key, go
live, open and pin an offer, watch its sales, unpin, end; bad input writes nothing."""

import re
from collections.abc import Awaitable, Callable

from tests.accounts.test_pages import HTML
from tests.conftest import Actor
from tests.orders.conftest import Market
from tests.payments.test_api import checkout, choose, deliver

OFFER = {"price": "29.9", "quantity": "20", "per_buyer_limit": "3", "minutes": "", "pin": "on"}


async def _session(market: Market, **fields: str) -> int:
    made = await market.client.post(
        f"/console/shops/{market.shop_id}/live",
        data={"title": "猕猴桃采摘直播", "description": "", "scheduled_at": ""} | fields,
        headers=market.merchant.headers,
    )
    assert made.status_code == 303, made.text
    return int(re.match(r"/console/live/(\d+)", made.headers["location"]).group(1))  # type: ignore[union-attr]


async def _api(market: Market, session_id: int) -> dict:
    got = await market.client.get(
        f"/api/v1/live-sessions/{session_id}", headers=market.merchant.headers
    )
    return dict(got.json())


async def test_a_merchant_runs_a_session_from_the_console(
    app: object, market: Market, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client, merchant = market.client, market.merchant
    session_id = await _session(market, scheduled_at="2030-06-01T20:00")
    live = await _api(market, session_id)
    assert live["status"] == "scheduled"
    assert live["scheduled_at"].startswith("2030-06-01T12:00")  # 20:00 Beijing time is 12:00 UTC
    room = await client.get(f"/console/live/{session_id}", headers=merchant.headers)
    assert room.status_code == 200
    assert f'value="{live["stream_key"]}"' in room.text
    assert f'value="{live["ingest_url"]}"' in room.text
    listed = await client.get(f"/console/shops/{market.shop_id}/live", headers=merchant.headers)
    assert f'href="/console/live/{session_id}"' in listed.text and "2030-06-01 20:00" in listed.text

    key = await client.post(f"/console/live/{session_id}/stream-key", headers=merchant.headers)
    assert key.status_code == 303
    assert (await _api(market, session_id))["stream_key"] != live["stream_key"]

    started = await client.post(f"/console/live/{session_id}/start", headers=merchant.headers)
    assert started.status_code == 303
    assert (await _api(market, session_id))["status"] == "live"

    opened = await client.post(
        f"/console/live/{session_id}/offers",
        data=OFFER | {"sku_id": str(market.sku_id)},
        headers=merchant.headers,
    )
    assert opened.status_code == 303, opened.text
    live = await _api(market, session_id)
    pinned = live["pinned_offer"]
    assert pinned["price_cents"] == 2990 and pinned["remaining"] == 20

    buyer = await make_user("buyer")
    order, payment = await checkout(market, buyer, quantity=2, offer=pinned)
    await choose(client, payment, "succeed")
    assert await deliver(app) == 1
    await checkout(market, await make_user("slow"), quantity=1, offer=pinned)  # not paid yet
    sales = await client.get(f"/console/live/{session_id}/sales", headers=merchant.headers)
    assert sales.status_code == 200
    assert 'id="paid-orders">1<' in sales.text and 'id="paid-units">2<' in sales.text
    assert 'id="takings">¥59.80<' in sales.text and 'id="pending-orders">1<' in sales.text
    assert '<span class="offer-left">17</span> / 20' in sales.text
    assert f"#{order['id']}" in sales.text

    unpinned = await client.post(f"/console/live/{session_id}/unpin", headers=merchant.headers)
    assert unpinned.status_code == 303
    assert (await _api(market, session_id))["pinned_offer"] is None
    repinned = await client.post(
        f"/console/live/{session_id}/offers/{pinned['id']}/pin", headers=merchant.headers
    )
    assert repinned.status_code == 303
    assert (await _api(market, session_id))["pinned_offer"]["id"] == pinned["id"]

    before = await client.get(f"/api/v1/products/{market.product_id}")
    stock = before.json()["skus"][0]["stock"]
    stopped = await client.post(
        f"/console/live/{session_id}/offers/{pinned['id']}/end", headers=merchant.headers
    )
    assert stopped.status_code == 303
    live = await _api(market, session_id)
    assert live["pinned_offer"] is None and live["offers"][0]["status"] == "ended"
    after = await client.get(f"/api/v1/products/{market.product_id}")
    assert after.json()["skus"][0]["stock"] == stock + 17  # the unsold units are back

    ended = await client.post(f"/console/live/{session_id}/end", headers=merchant.headers)
    assert ended.status_code == 303
    live = await _api(market, session_id)
    assert live["status"] == "ended" and live["pinned_offer"] is None


async def test_bad_input_is_shown_and_writes_nothing(market: Market) -> None:
    client, merchant = market.client, market.merchant
    for fields, message in [
        ({"title": ""}, "Enter a title"),
        ({"scheduled_at": "tomorrow"}, "Choose a time from now on"),
        ({"scheduled_at": "2001-01-01T10:00"}, "Choose a time from now on"),
    ]:
        refused = await client.post(
            f"/console/shops/{market.shop_id}/live",
            data={"title": "直播", "description": "", "scheduled_at": ""} | fields,
            headers=merchant.headers,
        )
        assert refused.status_code == 422 and message in refused.text, fields
    assert (
        "No sessions yet"
        in (
            await client.get(f"/console/shops/{market.shop_id}/live", headers=merchant.headers)
        ).text
    )

    session_id = await _session(market)
    for fields, status, message in [
        ({"price": "2.999"}, 422, "Enter a price in yuan"),
        ({"quantity": "0"}, 422, "Enter how many to put on sale"),
        ({"quantity": "100000"}, 409, ""),  # more than the SKU has
        ({"minutes": "-5"}, 422, "Enter for how many minutes"),
        ({"sku_id": "999999"}, 422, "Choose what to sell"),
    ]:
        refused = await client.post(
            f"/console/live/{session_id}/offers",
            data=OFFER | {"sku_id": str(market.sku_id)} | fields,
            headers=merchant.headers,
        )
        assert refused.status_code == status and message in refused.text, (fields, refused.text)
    assert (await _api(market, session_id))["offers"] == []


async def test_times_and_numbers_are_read_as_strictly_as_the_api(market: Market) -> None:
    client, merchant = market.client, market.merchant
    # Beijing time unless a zone is typed; the API's window either way (2000 to 2999).
    for when in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59",
                 "3000-01-01T00:00", "1999-12-31T23:59"):  # fmt: skip
        refused = await client.post(
            f"/console/shops/{market.shop_id}/live",
            data={"title": "直播", "description": "", "scheduled_at": when},
            headers=merchant.headers,
        )
        assert refused.status_code == 422 and "Choose a time from now on" in refused.text, when
    session_id = await _session(market)
    # "²" passes str.isdigit(), which int() refuses; "１９" int() reads.
    for fields, message in [
        ({"quantity": "²"}, "Enter how many to put on sale"),
        ({"quantity": "１９"}, "Enter how many to put on sale"),
        ({"per_buyer_limit": "³"}, "Enter how many one buyer may take"),
        ({"minutes": "²"}, "Enter for how many minutes"),
        ({"minutes": "١٠"}, "Enter for how many minutes"),
        ({"sku_id": "²"}, "Choose what to sell"),
        ({"sku_id": "99999999999"}, "Choose what to sell"),
        ({"price": "１９.９"}, "Enter a price in yuan"),
    ]:
        refused = await client.post(
            f"/console/live/{session_id}/offers",
            data=OFFER | {"sku_id": str(market.sku_id)} | fields,
            headers=merchant.headers,
        )
        assert refused.status_code == 422 and message in refused.text, (fields, refused.text)
    assert (await _api(market, session_id))["offers"] == []


async def test_only_those_who_run_the_session_reach_its_console(
    market: Market, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    session_id = await _session(market)
    stranger = await make_user("stranger")
    seen = await market.client.get(f"/console/live/{session_id}", headers=stranger.headers | HTML)
    assert seen.status_code == 403
    started = await market.client.post(
        f"/console/live/{session_id}/start", headers=stranger.headers | HTML
    )
    assert started.status_code == 403
    assert (await _api(market, session_id))["status"] == "scheduled"
    scheduled = await market.client.post(
        f"/console/shops/{market.shop_id}/live",
        data={"title": "冒充", "description": "", "scheduled_at": ""},
        headers=stranger.headers | HTML,
    )
    assert scheduled.status_code == 403
