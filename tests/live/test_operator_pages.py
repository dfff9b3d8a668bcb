"""Room moderation pages, in-process: the operator's list of rooms, and a room's page where
comments are deleted and their authors muted, banned and let back, as the API and the room
itself then see it; the shop's merchant moderates its own room, buyers nothing."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AuditEntry
from originlive.live.models import SanctionKind
from originlive.live.rooms import Hub, Room, Viewer
from tests.accounts.test_pages import HTML, csrf_of, login
from tests.conftest import Actor
from tests.live.test_api import BASE, schedule
from tests.orders.conftest import Market

MakeUser = Callable[..., Awaitable[Actor]]


class Talker:
    """A signed-in viewer in a room, speaking through the hub as its socket would."""

    def __init__(self, hub: Hub, room: Room, actor: Actor, name: str) -> None:
        self.hub, self.room = hub, room
        self.viewer = Viewer(user_id=actor.id, name=name, transport=None, send=_ignore)

    async def join(self) -> None:
        self.room = await self.hub.join(self.room, self.viewer)

    async def say(self, text: str) -> str | None:
        """None if the room took the comment, else why not (``muted``, ``banned``...)."""
        return await self.hub.comment(self.room, self.viewer, text)


async def _ignore(message: dict[str, Any]) -> None:
    return None


@asynccontextmanager
async def talkers(app: Any, session_id: int, *people: tuple[Actor, str]) -> AsyncIterator[Any]:
    hub: Hub = app.state.hub
    room = await hub.room(session_id)
    assert room is not None
    speaking = [Talker(hub, room, actor, name) for actor, name in people]
    for talker in speaking:  # a room with viewers stays loaded, and hears what is decided
        await talker.join()
    try:
        yield speaking
    finally:
        for talker in speaking:
            hub.leave(talker.room, talker.viewer)


async def _written(client: httpx.AsyncClient, url: str, headers: dict[str, str], n: int) -> Any:
    """The room's comments for review, once ``n`` of them are written down."""
    async with asyncio.timeout(10):
        while True:
            comments = (await client.get(f"{url}/comments", headers=headers)).json()
            if len(comments) >= n:
                return comments
            await asyncio.sleep(0.1)


async def _sanctions(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[Any]:
    listed = (await client.get(f"{url}/sanctions", headers=headers)).json()
    return sorted((s["kind"], s["user_id"]) for s in listed)


async def test_an_operator_deletes_mutes_bans_and_lifts_in_a_room(
    app: Any,
    market: Market,
    make_user: MakeUser,
    make_operator: Callable[[], Awaitable[Actor]],
    db: AsyncSession,
) -> None:
    client, headers = market.client, market.merchant.headers
    live = await schedule(market, title="猕猴桃开园直播")
    await client.post(f"{BASE}/{live['id']}/start", headers=headers)
    url = f"{BASE}/{live['id']}"
    fan, troll = await make_user("老客户"), await make_user("troll")
    async with talkers(app, live["id"], (fan, "老客户"), (troll, "troll")) as (first, second):
        assert await first.say("今年的果子甜吗") is None
        assert await second.say("CHEAP KIWIS ELSEWHERE") is None
        said = await _written(client, url, headers, 2)
        spam = next(c["seq"] for c in said if c["user_id"] == troll.id)

        operator = await make_operator()
        await login(client, operator.email)
        rooms = await client.get("/operator/live")
        assert rooms.status_code == 200
        assert f'href="/operator/live/{live["id"]}"' in rooms.text
        assert "猕猴桃开园直播" in rooms.text and "武功猕猴桃合作社" in rooms.text

        page = await client.get(f"/operator/live/{live['id']}")
        assert page.status_code == 200
        html = page.text
        assert html.index("CHEAP KIWIS ELSEWHERE") < html.index("今年的果子甜吗")  # newest first
        assert f'action="/operator/live/{live["id"]}/comments/{spam}/delete"' in html
        assert "Mute 10 min" in html and "No one is muted or banned." in html
        token = csrf_of(page)
        moderate = f"/operator/live/{live['id']}"

        deleted = await client.post(
            f"{moderate}/comments/{spam}/delete", data={"csrf_token": token}
        )
        assert deleted.status_code == 303
        assert deleted.headers["location"] == f"{moderate}?done=deleted"
        after = {c["seq"]: c for c in (await client.get(f"{url}/comments", headers=headers)).json()}
        assert after[spam]["deleted_at"] is not None
        assert [c["deleted_at"] for s, c in after.items() if s != spam] == [None]
        # Told to the room once committed: gone from what a new viewer is given on joining.
        _, recent = await app.state.hub.broker.recent(live["id"])
        kept = b"".join(recent).decode()
        assert "CHEAP KIWIS" not in kept and "今年的果子甜吗" in kept
        shown = await client.get(deleted.headers["location"])
        assert "The comment is deleted." in shown.text and "Deleted" in shown.text

        muted = await client.post(
            f"{moderate}/mutes", data={"csrf_token": token, "user_id": str(troll.id)}
        )
        assert muted.status_code == 303
        assert await _sanctions(client, url, headers) == [("mute", troll.id)]
        assert await second.say("再说一遍") == "muted"  # the room heard of it
        assert await first.say("还有货吗") is None

        banned = await client.post(
            f"{moderate}/bans", data={"csrf_token": token, "user_id": str(troll.id)}
        )
        assert banned.status_code == 303
        assert await _sanctions(client, url, headers) == [("ban", troll.id), ("mute", troll.id)]
        assert first.room.sanctioned(troll.id, SanctionKind.BAN)
        listed = (await client.get(f"{moderate}?done=banned")).text
        assert "The user is banned from this room." in listed and "troll" in listed

        lift = {"csrf_token": token, "user_id": str(troll.id), "kind": "mute"}
        assert (await client.post(f"{moderate}/lift", data=lift)).status_code == 303
        assert await _sanctions(client, url, headers) == [("ban", troll.id)]
        again = await client.post(f"{moderate}/lift", data=lift)
        assert again.status_code == 404 and "no longer muted or banned" in again.text

        # The anchor cannot be muted: the page says so and nothing is written.
        anchor = {"csrf_token": token, "user_id": str(market.merchant.id)}
        refused = await client.post(f"{moderate}/mutes", data=anchor)
        assert refused.status_code == 422 and "cannot be muted or banned" in refused.text
        assert await _sanctions(client, url, headers) == [("ban", troll.id)]
        await _written(client, url, headers, 3)  # the room's writer is done with this test

    audit = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.actor_id == operator.id).order_by(AuditEntry.id)
    )
    assert list(audit) == ["live.delete_comment", "live.mute", "live.ban", "live.unmute"]


async def test_the_merchant_moderates_its_own_room_and_buyers_nothing(
    app: Any, market: Market, make_user: MakeUser
) -> None:
    client, headers = market.client, market.merchant.headers
    live = await schedule(market)
    await client.post(f"{BASE}/{live['id']}/start", headers=headers)
    url, moderate = f"{BASE}/{live['id']}", f"/operator/live/{live['id']}"
    buyer = await make_user("buyer")

    anonymous = await client.get(moderate, headers=HTML)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert (await client.get("/operator/live", headers=HTML)).status_code == 303

    await login(client, buyer.email)
    token = csrf_of(await client.get("/"))
    assert (await client.get(moderate, headers=HTML)).status_code == 403
    assert (await client.get("/operator/live", headers=HTML)).status_code == 403
    attempt = {"csrf_token": token, "user_id": str(market.merchant.id)}
    assert (await client.post(f"{moderate}/bans", data=attempt)).status_code == 403

    client.cookies.clear()
    await login(client, market.merchant.email)
    assert (await client.get("/operator/live", headers=HTML)).status_code == 403  # operators'
    page = await client.get(moderate)
    assert page.status_code == 200 and 'href="/operator/shops"' not in page.text
    mute = {"user_id": str(buyer.id)}
    assert (await client.post(f"{moderate}/mutes", data=mute, headers=HTML)).status_code == 403
    assert await _sanctions(client, url, headers) == []  # a forged form changed nothing
    sent = await client.post(f"{moderate}/mutes", data=mute | {"csrf_token": csrf_of(page)})
    assert sent.status_code == 303
    assert await _sanctions(client, url, headers) == [("mute", buyer.id)]

    token = csrf_of(page)
    unknown = await client.post(
        "/operator/live/999999/mutes", data=mute | {"csrf_token": token}, headers=HTML
    )
    assert unknown.status_code == 404
    assert (await client.get("/operator/live/999999", headers=HTML)).status_code == 404
