"""Proof of delivery: a photo by the point that delivered the parcel, once, and only then."""

from collections.abc import Awaitable, Callable

from tests.catalog.conftest import jpeg, png
from tests.conftest import Actor
from tests.logistics.conftest import Network, scan_id


async def test_the_point_keeps_a_photo_of_a_delivered_parcel_once(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    code = parcel["code"]
    url = f"/api/v1/parcels/{code}/proof"
    photo = {"file": ("proof.jpg", jpeg(8, 6), "image/jpeg")}
    headers = network.point_staff.headers

    early = await client.post(url, files=photo, headers=headers)
    assert early.status_code == 409  # not delivered yet
    assert (await network.scan(network.point_staff, code, "ready_for_pickup")).status_code == 201
    pickup = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()
    body = {"scan_id": scan_id(), "pickup_code": pickup["pickup_code"]}
    assert (await client.post(f"{url[:-6]}/pickup", json=body, headers=headers)).status_code == 200

    for who in (network.station_staff, buyer, network.market.merchant):
        refused = await client.post(url, files=photo, headers=who.headers)
        assert refused.status_code in (403, 404), who
    not_an_image = await client.post(
        url, files={"file": ("x.jpg", b"not a picture", "image/jpeg")}, headers=headers
    )
    assert not_an_image.status_code == 415 or not_an_image.status_code == 422
    kept = await client.post(url, files=photo, headers=headers)
    assert kept.status_code == 201, kept.text
    photo_url = kept.json()["photo_url"]
    again = await client.post(url, files={"file": ("p.png", png(), "image/png")}, headers=headers)
    assert again.status_code == 409
    seen = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()
    assert seen["proof_photo_url"] == photo_url
    served = await client.get(photo_url)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
