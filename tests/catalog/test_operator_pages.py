"""The operator's shop review pages, in-process: approve and reject (a reason is required),
as the API sees it afterwards; nobody else gets in, and a form without its token does nothing."""

from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AuditEntry
from tests.accounts.test_pages import HTML, csrf_of, login
from tests.catalog.conftest import Catalog
from tests.conftest import Actor

MakeUser = Callable[..., Awaitable[Actor]]


async def _status(client: httpx.AsyncClient, owner: Actor, shop_id: int) -> tuple[str, str | None]:
    shop = (await client.get(f"/api/v1/shops/{shop_id}", headers=owner.headers)).json()
    return shop["status"], shop["reject_reason"]


async def test_an_operator_approves_one_shop_and_rejects_another_with_a_reason(
    client: httpx.AsyncClient,
    catalog: Catalog,
    make_user: MakeUser,
    make_operator: Callable[[], Awaitable[Actor]],
    db: AsyncSession,
) -> None:
    owner = await make_user("徐杨合作社")
    contact = {"contact_name": "王满", "contact_phone": "13800000000"}
    kiwi = await catalog.shop(owner, approve=False, **contact)
    other = await catalog.shop(owner, approve=False, name="黄水火锅底料坊", region_code="500240")
    operator = await make_operator()
    await login(client, operator.email)  # a cookie session, as a browser has

    page = await client.get("/operator/shops")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for text in ("武功猕猴桃合作社", "黄水火锅底料坊", "陕西省 咸阳市 武功县", "徐杨合作社",
                 owner.email, "王满 · 13800000000", "关中平原的果园"):  # fmt: skip
        assert text in html, text
    assert f'action="/operator/shops/{kiwi["id"]}/approve"' in html
    assert 'src="/static/vendor/htmx.org-2.0.11/htmx.min.js?v=' in html

    approved = await client.post(
        f"/operator/shops/{kiwi['id']}/approve", data={"csrf_token": csrf_of(page)}
    )
    assert approved.status_code == 303
    assert approved.headers["location"].startswith("/operator/shops?status=pending")
    back = await client.get(approved.headers["location"])
    assert "武功猕猴桃合作社 is approved" in back.text
    assert f'id="shop-{kiwi["id"]}"' not in back.text  # no longer waiting
    assert await _status(client, owner, kiwi["id"]) == ("approved", None)

    # No reason, a blank one, one too long: the form again with the message; nothing changes.
    token = csrf_of(back)
    for reason in ("", "   ", "太" * 501):
        refused = await client.post(
            f"/operator/shops/{other['id']}/reject", data={"csrf_token": token, "reason": reason}
        )
        assert refused.status_code == 422, reason
        assert "Tell the merchant why" in refused.text
        assert f'id="reason-{other["id"]}"' in refused.text
        assert await _status(client, owner, other["id"]) == ("pending", None)

    rejected = await client.post(
        f"/operator/shops/{other['id']}/reject",
        data={"csrf_token": token, "reason": "  营业执照照片不清晰  ", "tab": "pending"},
    )
    assert rejected.status_code == 303
    assert await _status(client, owner, other["id"]) == ("rejected", "营业执照照片不清晰")
    assert "is rejected" in (await client.get(rejected.headers["location"])).text

    listed = await client.get("/operator/shops", params={"status": "rejected"})
    assert "黄水火锅底料坊" in listed.text and "营业执照照片不清晰" in listed.text
    assert "No shops here." in (await client.get("/operator/shops")).text
    approved_tab = await client.get("/operator/shops", params={"status": "approved"})
    assert "武功猕猴桃合作社" in approved_tab.text and "Stop selling" in approved_tab.text

    audit = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.actor_id == operator.id).order_by(AuditEntry.id)
    )
    assert list(audit) == ["shop.approve", "shop.reject"]


async def test_only_operators_review_and_only_with_the_forms_token(
    client: httpx.AsyncClient,
    catalog: Catalog,
    make_user: MakeUser,
    make_operator: Callable[[], Awaitable[Actor]],
) -> None:
    owner = await make_user("owner")
    shop = await catalog.shop(owner, approve=False)
    approve = f"/operator/shops/{shop['id']}/approve"

    anonymous = await client.get("/operator/shops", headers=HTML)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Foperator%2Fshops"
    assert (await client.post(approve, headers=HTML)).status_code == 401

    # A buyer (or the shop's own owner) is refused, with a page or with a bearer token.
    buyer = await make_user("buyer")
    await login(client, buyer.email)
    page = await client.get("/operator/shops", headers=HTML)
    assert page.status_code == 403 and "Not allowed" in page.text
    home = await client.get("/")
    assert (await client.post(approve, data={"csrf_token": csrf_of(home)})).status_code == 403
    assert (await client.post(approve, headers=owner.headers)).status_code == 403
    reject = f"/operator/shops/{shop['id']}/reject"
    assert (
        await client.post(reject, data={"reason": "x"}, headers=owner.headers)
    ).status_code == 403

    # An operator's cookie without the form's token (a forged cross-site form) does nothing.
    operator = await make_operator()
    client.cookies.clear()
    await login(client, operator.email)
    assert (await client.post(approve, headers=HTML)).status_code == 403
    assert (await client.post(reject, data={"reason": "x"})).status_code == 403
    assert await _status(client, owner, shop["id"]) == ("pending", None)

    token = csrf_of(await client.get("/operator/shops"))
    missing = await client.post(
        "/operator/shops/999999/approve", data={"csrf_token": token}, headers=HTML
    )
    assert missing.status_code == 404
    assert (await client.get("/operator/shops?status=closed", headers=HTML)).status_code == 422
    assert (await client.post(approve, data={"csrf_token": token})).status_code == 303
    assert await _status(client, owner, shop["id"]) == ("approved", None)
