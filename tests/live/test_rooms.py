"""The room's parts on their own: a slow viewer on a real socket, the brokers, banned words."""

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from originlive.live.moderation import DEFAULT_LIST, BannedWords
from originlive.live.rooms import HIGH_WATER, QUEUE, Viewer, frame
from originlive.live.socket import RedactTokens
from originlive.realtime.broker import MemoryBroker, RedisBroker, compose, seq_of
from tests.servers import RedisServer


async def _socket_pair(buffer: int) -> tuple[asyncio.Transport, socket.socket]:
    """A transport of the loop writing into a socket whose other end the test holds, both
    with small kernel buffers so that a reader that does not read is felt at once."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    return transport, theirs  # type: ignore[return-value]


def _frames(data: bytes) -> list[bytes]:
    """The payloads of the unmasked frames in the data (as the server writes them)."""
    payloads = []
    while data:
        n = data[1] & 0x7F
        start = 2
        if n == 126:
            n, start = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, start = int.from_bytes(data[2:10], "big"), 10
        payloads.append(data[start : start + n])
        data = data[start + n :]
    return payloads


async def test_a_slow_viewer_loses_old_events_and_never_holds_the_room() -> None:
    async def no_asgi(message: object) -> None:
        raise AssertionError("frames go to the transport")

    transport, reader = await _socket_pair(4096)
    viewer = Viewer(user_id=None, name=None, transport=transport, send=no_asgi)
    await viewer.open(b'{"type":"state","seq":0}', 0)
    events = [compose("comment", n, 0, {"text": "甜" * 200}) for n in range(1, 3001)]
    for event in events:  # the room's pace: each push returns at once
        viewer.push(event, frame(event))
    assert transport.get_write_buffer_size() <= HIGH_WATER + len(frame(events[0]))
    assert len(viewer.queue) == QUEUE
    assert viewer.dropped > 0

    received = b""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        while not received.endswith(frame(events[-1])):
            viewer.flush()  # the hub does this every 50 ms: what waits goes out as it drains
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    received += await loop.sock_recv(reader, 1 << 16)
    seqs = [json.loads(p)["seq"] for p in _frames(received)]
    assert seqs[0] == 0 and seqs[-1] == 3000  # the state first; the newest last
    assert seqs == sorted(seqs)  # in order, with a gap where the old ones were dropped
    assert 0 < len(seqs) - 1 < 3000
    assert seqs[-QUEUE:] == list(range(3001 - QUEUE, 3001))
    transport.close()
    reader.close()


def test_frames_of_every_length_parse_back() -> None:
    for size in (0, 1, 125, 126, 65535, 65536, 70000):
        data = b"x" * size
        assert _frames(frame(data)) == [data]


def test_events_are_composed_as_json_with_their_number_first() -> None:
    event = compose("comment", 42, 1700000000000, {"text": '说 "你好"', "user": {"id": 1}})
    assert json.loads(event) == {
        "type": "comment",
        "seq": 42,
        "ts": 1700000000000,
        "text": '说 "你好"',
        "user": {"id": 1},
    }
    assert seq_of(event) == 42
    assert json.loads(compose("status", 7, 1, {})) == {"type": "status", "seq": 7, "ts": 1}


async def test_the_memory_broker_numbers_keeps_and_forgets() -> None:
    got: list[tuple[int, bytes]] = []
    broker = MemoryBroker()
    await broker.start(lambda room, data: got.append((room, data)))
    for n in range(60):
        await broker.publish(1, "comment", {"text": str(n)}, keep=True)
    await broker.publish(1, "likes", {"count": 3}, keep=False)
    await broker.publish(2, "comment", {"text": "other room"}, keep=True)
    assert [seq_of(d) for r, d in got if r == 1] == list(range(1, 62))
    seq, kept = await broker.recent(1)
    assert seq == 61 and len(kept) == 50
    assert [json.loads(e)["text"] for e in kept] == [str(n) for n in range(10, 60)]
    await broker.forget(1, 59)
    assert [seq_of(e) for e in (await broker.recent(1))[1]][-2:] == [58, 60]


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[Redis, Redis]]:
    one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
    yield one, two
    await one.aclose()
    await two.aclose()


@pytest.mark.redis
async def test_redis_brokers_share_numbers_comments_and_viewers(
    redis_pair: tuple[Redis, Redis],
) -> None:
    heard: dict[str, list[bytes]] = {"one": [], "two": []}
    one, two = RedisBroker(redis_pair[0]), RedisBroker(redis_pair[1])
    await one.start(lambda room, data: heard["one"].append(data))
    await two.start(lambda room, data: heard["two"].append(data))
    try:
        for n in range(30):
            broker = one if n % 2 else two
            await broker.publish(5, "comment", {"text": f"第{n}条"}, keep=True)
        async with asyncio.timeout(5):
            while len(heard["one"]) < 30 or len(heard["two"]) < 30:
                await asyncio.sleep(0.01)
        assert heard["one"] == heard["two"]  # the same bytes, in the same order
        first = seq_of(heard["one"][0])
        assert [seq_of(e) for e in heard["one"]] == list(range(first, first + 30))
        seq, kept = await two.recent(5)
        assert seq == first + 29 and [json.loads(e)["text"] for e in kept][-1] == "第29条"
        await one.forget(5, first + 29)
        assert seq_of((await two.recent(5))[1][-1]) == first + 28
        assert await one.viewers(5, 120) == 120
        assert await two.viewers(5, 30) == 150
        assert await one.viewers(5, 100) == 130
    finally:
        await one.close()
        await two.close()


def test_banned_words_are_found_however_written() -> None:
    words = BannedWords.from_file(DEFAULT_LIST)
    for text in ("加 微-信 详聊", "ＦＵＣＫ this", "Bitches!", "这是高仿的", "PAY me, directly"):
        assert words.find(text) is not None, text
    for text in ("猕猴桃真甜", "rabbit chase", "scunthorpe", "", "加油"):
        assert words.find(text) is None, text
    assert BannedWords([]).find("anything") is None


def test_tokens_in_socket_paths_stay_out_of_the_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws/live/1?token=s3cret-Token_x&x=1"),
        None,
    )
    assert RedactTokens().filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "WebSocket /ws/live/1?token=[redacted]&x=1" [accepted]'
    )


@pytest.mark.redis
async def test_room_events_flow_again_after_redis_restarts(own_redis: RedisServer) -> None:
    heard: list[bytes] = []
    redis = Redis.from_url(own_redis.url, socket_connect_timeout=1)
    broker = RedisBroker(redis)
    await broker.start(lambda room, data: heard.append(data))
    try:
        await broker.publish(3, "comment", {"text": "before"}, keep=True)
        own_redis.kill()
        own_redis.start()  # empty: it keeps nothing
        async with asyncio.timeout(15):
            while True:  # the listener subscribes again once Redis is back
                with contextlib.suppress(RedisError):
                    await broker.publish(3, "comment", {"text": "after"}, keep=True)
                if any(b'"after"' in e for e in heard):
                    break
                await asyncio.sleep(0.2)
        assert json.loads(heard[0])["text"] == "before"
        after = next(e for e in heard if b'"after"' in e)
        assert seq_of(after) > seq_of(heard[0])  # numbers go on increasing
    finally:
        await broker.close()
        await redis.aclose()
