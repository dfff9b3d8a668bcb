"""The live rooms of this process: its viewers' sockets, and what it tells the other processes.

Every event reaches this process once, encoded once by the broker (``realtime.broker``); the
hub makes it a WebSocket frame once and writes that same frame to each viewer's socket. A
viewer whose socket does not keep up (its buffer holds more than ``HIGH_WATER`` bytes) gets
its frames queued instead, up to ``QUEUE`` of them; older ones are dropped, and the room
never waits for it.

Likes and viewer counts are gathered and published once a second; purchases of a session's
offers too, as a few ``purchase`` events and one ``stock`` event per offer. Comments are
written down in batches, twice a second.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from originlive.db import utcnow
from originlive.live import service
from originlive.live.models import SanctionKind, SessionStatus
from originlive.live.moderation import BannedWords
from originlive.orders import service as orders
from originlive.orders.placing import Placed
from originlive.orders.schemas import Offer
from originlive.realtime.broker import Broker, seq_of
from originlive.realtime.ratelimit import RateLimiter

log = logging.getLogger(__name__)

HIGH_WATER = 64 * 1024  # bytes in a socket's buffer beyond which its frames queue
QUEUE = 256  # frames a slow viewer may lag behind; older ones are dropped
PURCHASES_SHOWN = 5  # purchase events per offer per second; the rest are counted in "others"
LIKES_PER_SECOND = 20  # likes one viewer may add in a second
TICK_SECONDS = 1.0
COMMENT_FLUSH_SECONDS = 0.5


def frame(data: bytes) -> bytes:
    """A server's WebSocket text frame (unmasked, unfragmented) holding the data."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


class Viewer:
    """One socket in a room. With the server's transport at hand, frames are written to it
    directly; otherwise (another ASGI server) through ASGI ``send`` by a task of its own."""

    __slots__ = (
        "_wake",
        "_writer",
        "dropped",
        "lagging",
        "likes",
        "name",
        "queue",
        "ready",
        "send",
        "transport",
        "user_id",
    )

    def __init__(
        self,
        *,
        user_id: int | None,
        name: str | None,
        transport: asyncio.Transport | None,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        lagging: set["Viewer"] | None = None,
    ) -> None:
        # The hub's viewers with frames waiting, whose sockets it drains every 50 ms.
        self.lagging = lagging if lagging is not None else set()
        self.user_id = user_id
        self.name = name
        self.transport = transport
        self.send = send
        self.queue: deque[bytes] = deque(maxlen=QUEUE)
        self.ready = False  # until the room's state has been sent, frames wait
        self.dropped = 0
        self.likes = 0  # this second's
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        if transport is None:
            self._writer = asyncio.create_task(self._write_via_asgi())

    def push(self, data: bytes, framed: bytes) -> None:
        """Send an event now, or queue it (dropping the oldest) if the socket is behind."""
        transport = self.transport
        if transport is None:
            self._enqueue(data)
            self._wake.set()
        elif transport.is_closing():
            return
        elif self.ready and not self.queue and transport.get_write_buffer_size() <= HIGH_WATER:
            transport.write(framed)
        else:
            self._enqueue(framed)

    def _enqueue(self, item: bytes) -> None:
        if len(self.queue) == QUEUE:
            self.dropped += 1
        self.queue.append(item)
        if self.transport is not None:
            self.lagging.add(self)

    def flush(self) -> None:
        """Write what waits, as far as the socket's buffer allows."""
        transport = self.transport
        if transport is None or not self.ready:
            return
        while self.queue and transport.get_write_buffer_size() <= HIGH_WATER:
            transport.write(self.queue.popleft())
        if not self.queue or transport.is_closing():
            self.lagging.discard(self)

    async def open(self, state: bytes, after_seq: int) -> None:
        """Send the room's state, then what was published since (not what the state holds)."""
        waiting = [item for item in self.queue if seq_of(item) > after_seq]
        self.queue.clear()
        if self.transport is not None:
            self.transport.write(frame(state))
        else:
            await self.send({"type": "websocket.send", "text": state.decode()})
        self.queue.extend(waiting)
        self.ready = True
        self.flush()
        self._wake.set()

    async def _write_via_asgi(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.ready and self.queue:
                await self.send({"type": "websocket.send", "text": self.queue.popleft().decode()})

    async def drain(self) -> None:
        """Wait, a second at most, for the frames queued for this socket to be written."""
        deadline = time.monotonic() + 1
        while self.queue and not self._closing() and time.monotonic() < deadline:
            self.flush()
            self._wake.set()
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # the ASGI writer's last send

    def _closing(self) -> bool:
        return self.transport is not None and self.transport.is_closing()

    def close(self) -> None:
        self.lagging.discard(self)
        if self._writer is not None:
            self._writer.cancel()


@dataclass
class Room:
    """What this process holds of a room: its viewers here, and the room's state as the
    events have told it."""

    id: int
    status: str
    title: str
    pinned: dict[str, Any] | None
    likes: int
    viewers_total: int = 0
    viewers: set[Viewer] = field(default_factory=set)
    # user id -> kind -> until (None: for the session)
    sanctions: dict[int, dict[str, datetime | None]] = field(default_factory=dict)

    def sanctioned(self, user_id: int, kind: SanctionKind) -> bool:
        kinds = self.sanctions.get(user_id, {})
        if kind.value not in kinds:
            return False
        until = kinds[kind.value]
        return until is None or until > utcnow()

    def state(self) -> dict[str, Any]:
        return {
            "session": {"id": self.id, "title": self.title, "status": self.status},
            "pinned": self.pinned,
            "likes": self.likes,
            "viewers": max(self.viewers_total, len(self.viewers)),
        }

    def observe(self, event: dict[str, Any]) -> None:
        """Keep the state up to date with an event (from any process)."""
        kind = event["type"]
        if kind == "pin":
            self.pinned = event["offer"]
        elif kind == "stock":
            if self.pinned is not None and self.pinned["id"] == event["offer_id"]:
                self.pinned["remaining"] = event["remaining"]
        elif kind == "status":
            self.status = event["status"]
        elif kind == "likes":
            self.likes = event["count"]
        elif kind == "viewers":
            self.viewers_total = event["count"]
        elif kind == "moderation" and "user_id" in event:
            kinds = self.sanctions.setdefault(event["user_id"], {})
            action = event["action"]
            if action in ("mute", "ban"):
                until = event.get("until")
                kinds[action] = datetime.fromisoformat(until) if until else None
            elif action in ("unmute", "unban"):
                kinds.pop(action[2:], None)


@dataclass
class _Purchase:
    offer_id: int
    region_code: str
    item: str
    quantity: int


class Hub:
    """This process's rooms."""

    def __init__(
        self,
        *,
        broker: Broker,
        sessionmaker: async_sessionmaker[AsyncSession],
        limiter: RateLimiter,
        banned_words: BannedWords,
        comment_limit: int,
        comment_window_seconds: int,
    ) -> None:
        self.broker = broker
        self._sessionmaker = sessionmaker
        self._limiter = limiter
        self._banned = banned_words
        self._comment_limit = comment_limit
        self._comment_window = comment_window_seconds
        self.rooms: dict[int, Room] = {}
        self._loading: dict[int, asyncio.Future[Room | None]] = {}
        self._likes: dict[int, int] = {}
        self._comments: list[dict[str, Any]] = []
        self._writing = asyncio.Lock()  # held while a batch of comments is being written
        self._purchases: list[_Purchase] = []
        self._offer_rooms: dict[int, int | None] = {}
        self._counties: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()  # closing sockets, striking comments
        self.lagging: set[Viewer] = set()

    async def start(self) -> None:
        await self.broker.start(self.deliver)
        self._tasks = [
            asyncio.create_task(self._every(TICK_SECONDS, self._tick)),
            asyncio.create_task(self._every(COMMENT_FLUSH_SECONDS, self._write_comments)),
            asyncio.create_task(self._every(0.05, self._flush_viewers)),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._write_comments()
        await self.broker.close()

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:  # a bad second must not stop the room
                log.exception("live rooms: %s failed", getattr(job, "__name__", job))

    # Events in

    def deliver(self, room_id: int, data: bytes) -> None:
        """An event of a room, from the broker: to every viewer here, the same frame."""
        room = self.rooms.get(room_id)
        if room is None:
            return
        if not data.startswith(b'{"type":"comment"'):
            self._observe(room, json.loads(data))
        framed = frame(data)
        for viewer in room.viewers:
            # Viewer.push's first case, inline: a method call is a sixth of a write's cost
            # (measured: 6.8 us a delivery through push, 6.2 inline, 5.8 bare writes).
            transport = viewer.transport
            if (
                transport is not None
                and viewer.ready
                and not viewer.queue
                and transport.get_write_buffer_size() <= HIGH_WATER
                and not transport.is_closing()
            ):
                transport.write(framed)
            else:
                viewer.push(data, framed)

    def _observe(self, room: Room, event: dict[str, Any]) -> None:
        room.observe(event)
        if event["type"] == "status" and event.get("closed"):
            # The shop stopped selling: everyone here is put out once this last event is
            # out, and the room is forgotten, so that a new join reads the session again
            # (and is refused: the room of a shop not approved is not there).
            self.rooms.pop(room.id, None)
            self._put_out(room.viewers, 4404, "This room is closed.")
        if event["type"] != "moderation":
            return
        if event["action"] == "ban":
            banned = [v for v in room.viewers if v.user_id == event["user_id"]]
            self._put_out(banned, 4403, "banned from this room")
        elif event["action"] == "delete":
            for row in self._comments:
                if row["session_id"] == room.id and row["seq"] == event["comment_seq"]:
                    row["deleted_at"] = utcnow()
                    return
            # Not waiting here: it may be in the batch being written, which the deletion's
            # UPDATE did not see (on PostgreSQL, a row not yet committed is not there for
            # it). Strike it again once that batch is in; a no-op if the UPDATE found it.
            task = asyncio.create_task(self._strike(room.id, event["comment_seq"]))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _put_out(self, viewers: Iterable[Viewer], code: int, reason: str) -> None:
        """Close these viewers' sockets once the frames queued for them are out."""
        for viewer in list(viewers):
            task = asyncio.create_task(_close(viewer, code, reason))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # Viewers

    async def room(self, session_id: int) -> Room | None:
        """This process's room of the session, loaded once; None if there is no such session."""
        room = self.rooms.get(session_id)
        if room is not None:
            return room
        loading = self._loading.get(session_id)
        if loading is None:
            loading = asyncio.get_running_loop().create_future()
            self._loading[session_id] = loading
            try:
                loaded = await self._load(session_id)
            except BaseException as exc:
                loading.set_exception(exc)
                raise
            finally:
                del self._loading[session_id]
            if loaded is not None:
                self.rooms[session_id] = loaded
            loading.set_result(loaded)
        return await asyncio.shield(loading)

    async def _load(self, session_id: int) -> Room | None:
        # An event published while the database was read would be missed (the room is not
        # here yet to observe it): read again if the room's number moved meanwhile.
        for _ in range(3):
            before, _ = await self.broker.recent(session_id)
            room = await self._read(session_id)
            if room is None or (await self.broker.recent(session_id))[0] == before:
                break
        return room

    async def _read(self, session_id: int) -> Room | None:
        async with self._sessionmaker() as session:
            live = await service.get_session(session, session_id=session_id)
            if live is None or not await service.is_public(session, live=live):
                return None  # as the API, the rooms of a shop not yet approved are not there
            pinned = None
            if live.pinned_offer_id is not None:
                pinned = await _offer_view(session, live.pinned_offer_id)
            room = Room(
                id=live.id,
                status=live.status.value,
                title=live.title,
                pinned=pinned,
                likes=live.likes,
            )
            for row in await service.sanctions(session, session_id=session_id):
                room.sanctions.setdefault(row.user_id, {})[row.kind.value] = row.until
        return room

    async def join(self, room: Room, viewer: Viewer) -> Room:
        """Add the viewer; it gets the room's state, then every event after it. Returns the
        room it joined (the one given, unless the room was let go and loaded again)."""
        room = self.rooms.setdefault(room.id, room)
        room.viewers.add(viewer)
        seq, recent = await self.broker.recent(room.id)
        state = pydantic_core.to_json(room.state())
        head = b'{"type":"state","seq":%d,"ts":%d,' % (seq, int(time.time() * 1000))
        await viewer.open(head + state[1:-1] + b',"comments":[' + b",".join(recent) + b"]}", seq)
        return room

    def leave(self, room: Room, viewer: Viewer) -> None:
        viewer.close()
        room.viewers.discard(viewer)
        if not room.viewers and room.status == SessionStatus.ENDED.value:
            self.rooms.pop(room.id, None)

    async def _flush_viewers(self) -> None:
        for viewer in list(self.lagging):
            viewer.flush()

    # What viewers say

    async def comment(self, room: Room, viewer: Viewer, text: str) -> str | None:
        """Publish a viewer's comment; or why not (an error code for the viewer alone)."""
        if viewer.user_id is None or viewer.name is None:
            return "login_required"
        if room.status == SessionStatus.ENDED.value:
            return "room_closed"
        if room.sanctioned(viewer.user_id, SanctionKind.BAN):
            return "banned"
        if room.sanctioned(viewer.user_id, SanctionKind.MUTE):
            return "muted"
        key = f"comment:{room.id}:{viewer.user_id}"
        hits, _ = await self._limiter.hit(key, window_seconds=self._comment_window)
        if hits > self._comment_limit:
            return "rate_limited"
        if self._banned.find(text) is not None:
            return "banned_word"
        fields = {"user": {"id": viewer.user_id, "name": viewer.name}, "text": text}
        seq = await self.broker.publish(room.id, "comment", fields, keep=True)
        self._comments.append(
            {
                "session_id": room.id,
                "seq": seq,
                "user_id": viewer.user_id,
                "author": viewer.name,
                "text": text,
                "created_at": utcnow(),
                "deleted_at": None,
            }
        )
        return None

    def like(self, room: Room, viewer: Viewer, count: int) -> None:
        """Count a viewer's likes, within its budget for the second."""
        count = max(0, min(count, LIKES_PER_SECOND - viewer.likes))
        if count:
            viewer.likes += count
            self._likes[room.id] = self._likes.get(room.id, 0) + count

    async def _write_comments(self) -> None:
        async with self._writing:
            rows, self._comments = self._comments, []
            if not rows:
                return
            try:
                async with self._sessionmaker() as session, session.begin():
                    await service.store_comments(session, rows)
            except Exception:
                if len(self._comments) < 100_000:  # again next time, unless the database is gone
                    self._comments[:0] = rows
                raise

    async def _strike(self, session_id: int, seq: int) -> None:
        """Mark a deleted comment in the record once any batch being written is in."""
        try:
            async with self._writing, self._sessionmaker() as session, session.begin():
                await service.delete_comment(session, session_id=session_id, seq=seq)
        except Exception:
            log.exception("live rooms: striking comment %s of session %s failed", seq, session_id)

    # What the routes and the order path tell the room

    async def publish(self, session_id: int, kind: str, fields: dict[str, Any]) -> int:
        """Send an event to the room in every process (after the commit that made it true)."""
        return await self.broker.publish(session_id, kind, fields, keep=False)

    def order_placed(self, placed: Placed) -> None:
        """A committed new order: its lines from offers become purchases in their rooms."""
        if placed.replayed or len(self._purchases) > 10_000:
            return
        order = placed.order
        code = order["address"]["region_code"]
        for item in order["items"]:
            if item["offer_id"] is not None:
                self._purchases.append(
                    _Purchase(item["offer_id"], code, item["title"], item["quantity"])
                )

    # Once a second

    async def _tick(self) -> None:
        for room in self.rooms.values():
            for viewer in room.viewers:
                viewer.likes = 0
        likes, self._likes = self._likes, {}
        purchases, self._purchases = self._purchases, []
        async with self._sessionmaker() as session:
            if likes:
                async with session.begin():
                    totals = await service.add_likes(session, likes)
                for session_id, total in totals.items():
                    await self.publish(session_id, "likes", {"count": total})
            if purchases:
                await self._announce(session, purchases)
            await self._restock(session)
        for room in list(self.rooms.values()):
            total = await self.broker.viewers(room.id, len(room.viewers))
            if total != room.viewers_total:
                room.viewers_total = total
                await self.publish(room.id, "viewers", {"count": total})
            if not room.viewers:
                self.rooms.pop(room.id, None)

    async def _restock(self, session: AsyncSession) -> None:
        """Units that came back to a pinned offer (an order expired or was cancelled) or left it
        from another process show within a second: a read of the pinned offers watched here."""
        pinned = {r.pinned["id"]: r for r in self.rooms.values() if r.pinned and r.viewers}
        if not pinned:
            return
        left = await service.remaining(session, pinned)
        await session.rollback()
        for offer_id, room in pinned.items():
            shown = room.pinned["remaining"] if room.pinned else None
            if offer_id in left and left[offer_id] != shown:
                fields = {"offer_id": offer_id, "remaining": left[offer_id]}
                await self.publish(room.id, "stock", fields)

    async def _announce(self, session: AsyncSession, purchases: list[_Purchase]) -> None:
        unknown = {p.offer_id for p in purchases} - self._offer_rooms.keys()
        if unknown:
            self._offer_rooms.update(await service.room_of_offers(session, unknown))
        purchases = [p for p in purchases if self._offer_rooms.get(p.offer_id) is not None]
        if not purchases:
            return
        codes = {p.region_code for p in purchases} - self._counties.keys()
        if codes:
            self._counties.update(await service.county_names(session, codes))
        by_offer: dict[int, list[_Purchase]] = {}
        for p in purchases:
            by_offer.setdefault(p.offer_id, []).append(p)
        left = await service.remaining(session, by_offer)
        await session.rollback()
        for offer_id, bought in by_offer.items():
            room_id = self._offer_rooms[offer_id]
            assert room_id is not None
            shown = bought[-PURCHASES_SHOWN:]
            for i, p in enumerate(shown):
                fields = {
                    "offer_id": offer_id,
                    "county": self._counties.get(p.region_code, p.region_code),
                    "item": p.item,
                    "quantity": p.quantity,
                }
                if i == len(shown) - 1 and len(bought) > len(shown):
                    fields["others"] = len(bought) - len(shown)
                await self.publish(room_id, "purchase", fields)
            if offer_id in left:
                await self.publish(
                    room_id, "stock", {"offer_id": offer_id, "remaining": left[offer_id]}
                )


async def _offer_view(session: AsyncSession, offer_id: int) -> dict[str, Any] | None:
    offer = await orders.get_offer(session, offer_id=offer_id)
    return None if offer is None else offer_event(offer)


def offer_event(offer: Any) -> dict[str, Any]:
    """A pinned offer as the room shows it: price, units left, end."""
    return Offer.model_validate(offer).model_dump(mode="json")


async def _close(viewer: Viewer, code: int, reason: str) -> None:
    await viewer.drain()  # the event that says why goes out first
    with contextlib.suppress(Exception):
        await viewer.send({"type": "websocket.close", "code": code, "reason": reason})
