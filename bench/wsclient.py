"""A lean WebSocket client for the fan-out bench: thousands of sockets on one event loop.

A client built on the ``websockets`` library spends more CPU per received frame than the
server spends sending it, so on two cores it would measure itself. This one does only what
the bench needs (RFC 6455, client side): the HTTP Upgrade handshake by hand (no extensions
offered, so frames come uncompressed), frames parsed from their 2-, 4- or 10-byte header
without decoding JSON, masked frames out, pong to ping, close echoed.

A measured comment carries its send time in its text as ``~t=<time.time()>~``; a receiver
finds that marker in the frame's bytes. Any other frame is counted by its ``"type"``.

Viewers are of two kinds. A *probe* is an ``asyncio.Protocol`` read by the event loop as
soon as a frame arrives; it records each comment's delivery latency (receive time - send
time). A *quiet* viewer is a plain non-blocking socket that a :class:`Sweeper` reads every
few tens of milliseconds, several frames a ``recv``: it counts what it gets and answers pings
but records no latency. On loopback the receiving side's kernel work (a ``recv`` and an ACK
per read, about 6 µs here) costs more than the Python (about 2 µs a frame), so quiet viewers
make the client far cheaper; but the server then paid more per delivery here (most likely
the unread sockets' delayed ACKs, sent from timers armed on the server's core; see
``fanout.py``).
:func:`viewer_process` runs a share of the viewers in a process of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import resource
import select
import socket
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Protocol, cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MARK = b"~t="  # a measured comment's text: ~t=<send time>~
_END = b"~"
_TYPE = b'"type"'


def raise_nofile_limit() -> None:
    """Raise this process's open-file limit to its hard limit (10,000 sockets need it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def mask(payload: bytes, key: bytes) -> bytes:
    """The payload XOR the repeated 4-byte masking key (RFC 6455 5.3)."""
    n = len(payload)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked frame from a client."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + mask(payload, key)


def frame_type(payload: bytes) -> str:
    """The value of a JSON object's ``"type"`` key, found without decoding the object."""
    i = payload.find(_TYPE)
    if i < 0:
        return "?"
    start = payload.find(b'"', payload.find(b":", i + 6) + 1) + 1
    return payload[start : payload.find(b'"', start)].decode("utf-8", "replace")


class Tally:
    """What every socket of one process has received, shared among them."""

    def __init__(self, sample_every: int = 1) -> None:
        self.sample_every = sample_every
        self.latencies: list[float] = []  # seconds, of measured comments (every k-th)
        self.types: Counter[str] = Counter()  # frames that are not measured comments
        self.closes: Counter[str] = Counter()  # close codes sent by the server
        self.errors: Counter[str] = Counter()  # failed handshakes, protocol errors
        self.samples: dict[str, bytes] = {}  # the first frame of each unmeasured type
        self.last_delivery = 0.0  # time.time() of the latest measured comment
        self.dropped = 0  # connections lost while counting

    def reset(self) -> None:
        """Start counting afresh (the sockets' own counts are reset by their owner)."""
        self.latencies.clear()
        self.types.clear()
        self.last_delivery = 0.0
        self.dropped = 0


class _Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...


class Socket(asyncio.Protocol):
    """One client WebSocket: a viewer, or the poster when its URL carries a token. Its bytes
    come from the event loop (a probe) or from a :class:`Sweeper` (a quiet viewer)."""

    __slots__ = (
        "_buf",
        "_key",
        "_open",
        "_request",
        "_tally",
        "comments",
        "counting",
        "frames",
        "measure",
        "ready",
        "transport",
    )

    def __init__(
        self, host: str, port: int, target: str, tally: Tally, *, measure: bool = True
    ) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._tally = tally
        self._buf = b""
        self._open = False
        self.transport: _Transport | None = None
        self.measure = measure  # record latencies (read as soon as frames arrive)
        # Resolved with True on a first frame that is the room's state, else False.
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.comments = 0  # measured comments received
        self.frames = 0  # every data frame received
        self.counting = False  # connection losses count once the measurement is on

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(_Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.ready.done():
            self._tally.errors[f"lost before ready: {exc!r}"] += 1
            self.ready.set_result(False)
        elif self.counting:
            self._tally.dropped += 1

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self._buf:
            data = self._buf + data
            self._buf = b""
        pos = 0
        if not self._open:
            pos = self._handshake(data)
            if pos <= 0:
                return
        end = len(data)
        tally = self._tally
        while end - pos >= 2:
            b0 = data[pos]
            n = data[pos + 1]
            if n < 126:
                start = pos + 2
            elif n == 126:
                if end - pos < 4:
                    break
                n = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            else:  # mask bit set: a server must not mask
                self._fail("masked frame from the server")
                return
            stop = start + n
            if stop > end:
                break
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:
                self.frames += 1
                i = data.find(MARK, start, stop)
                if i >= 0:
                    self.comments += 1
                    if self.measure:
                        tally.last_delivery = now
                        if self.comments % tally.sample_every == 0:
                            j = data.find(_END, i + 3, stop)
                            tally.latencies.append(now - float(data[i + 3 : j]))
                else:
                    self._other(data[start:stop])
                if b0 & 0x80 == 0:
                    tally.errors["fragmented frame (unsupported)"] += 1
            elif opcode == 9:
                self.send(10, data[start:stop])
            elif opcode == 8:
                code = int.from_bytes(data[start : start + 2], "big") if n >= 2 else 1005
                tally.closes[f"{code} {data[start + 2 : stop].decode('utf-8', 'replace')}"] += 1
                self.send(8, data[start : start + 2])
                if self.transport is not None:
                    self.transport.close()
                return
            elif opcode != 10:
                tally.errors[f"opcode {opcode}"] += 1
            pos = stop
        if pos < end:
            self._buf = data[pos:]

    # helpers

    def _handshake(self, data: bytes) -> int:
        """Where the frames start after the 101 answer; 0 while it is incomplete, -1 if refused."""
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            self._buf = data
            return 0
        head = data[:head_end].decode("latin-1")
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if lines[0].split(" ", 2)[1:2] != ["101"]:
            body = data[head_end + 4 : head_end + 204].decode("utf-8", "replace")
            self._fail(f"{lines[0]} {body}".strip())
            return -1
        if headers.get("sec-websocket-accept") != accept:
            self._fail("wrong Sec-WebSocket-Accept")
            return -1
        if "sec-websocket-extensions" in headers:
            self._fail(f"extension not offered: {headers['sec-websocket-extensions']}")
            return -1
        self._open = True
        return head_end + 4

    def _other(self, payload: bytes) -> None:
        kind = frame_type(payload)
        tally = self._tally
        tally.types[kind] += 1
        if kind not in tally.samples:
            tally.samples[kind] = payload[:600]
        if not self.ready.done():  # the first frame: the room's state, or why not
            if kind != "state":
                tally.errors[f"first frame: {payload[:300].decode('utf-8', 'replace')}"] += 1
            self.ready.set_result(kind == "state")

    def _fail(self, reason: str) -> None:
        self._tally.errors[reason] += 1
        if not self.ready.done():
            self.ready.set_result(False)
        if self.transport is not None:
            self.transport.abort()

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one masked frame (if the socket is still open)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self.send(1, text.encode())

    def close(self) -> None:
        """Close politely (code 1000); the server's echo ends the connection."""
        self.send(8, (1000).to_bytes(2, "big"))


class _RawTransport:
    """What a quiet viewer's :class:`Socket` writes to: its plain socket, read by a sweeper."""

    def __init__(self, sock: socket.socket, sweeper: Sweeper, proto: Socket) -> None:
        self.sock, self.sweeper, self.proto = sock, sweeper, proto

    def write(self, data: bytes) -> None:
        try:
            self.sock.send(data)  # a handshake or a control frame: far below the buffer
        except OSError:
            self.abort()

    def is_closing(self) -> bool:
        return self.sock.fileno() < 0

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if self.sock.fileno() >= 0:
            self.sweeper.forget(self.sock)
            self.sock.close()
            self.proto.connection_lost(None)


class Sweeper:
    """Reads the quiet viewers' sockets every ``interval`` seconds: one epoll poll, then one
    ``recv`` per readable socket, in slices that let the event loop serve the probes between."""

    SLICE = 128  # sockets read before the event loop gets a turn

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._epoll = select.epoll()
        self._sockets: dict[int, tuple[socket.socket, Socket]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, sock: socket.socket, proto: Socket) -> None:
        self._sockets[sock.fileno()] = (sock, proto)
        self._epoll.register(sock.fileno(), select.EPOLLIN)

    def forget(self, sock: socket.socket) -> None:
        if self._sockets.pop(sock.fileno(), None) is not None:
            self._epoll.unregister(sock.fileno())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._epoll.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            ready = self._epoll.poll(0, max(1, len(self._sockets)))
            for n, (fd, _) in enumerate(ready, 1):
                entry = self._sockets.get(fd)
                if entry is None:
                    continue
                sock, proto = entry
                try:
                    data = sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    proto.data_received(data)
                elif proto.transport is not None:
                    proto.transport.abort()
                if n % self.SLICE == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(max(0.0, started + self.interval - loop.time()))


def _parts(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return parts.hostname or "127.0.0.1", parts.port or 80, target


async def connect(
    url: str, tally: Tally, *, sweeper: Sweeper | None = None, timeout: float = 30
) -> Socket:
    """One open socket that has received its first frame (the room's state): a probe, or a
    quiet viewer read by ``sweeper``. Raises if refused or too slow."""
    host, port, target = _parts(url)
    loop = asyncio.get_running_loop()
    if sweeper is None:
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: Socket(host, port, target, tally), host, port),
            timeout,
        )
    else:
        proto = Socket(host, port, target, tally, measure=False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        except BaseException:
            sock.close()
            raise
        sweeper.add(sock, proto)
        proto.connection_made(cast(asyncio.BaseTransport, _RawTransport(sock, sweeper, proto)))
    if not await asyncio.wait_for(proto.ready, timeout):
        raise ConnectionError("refused or closed before its first frame")
    return proto


async def connect_many(
    url: str,
    count: int,
    tally: Tally,
    *,
    probe_every: int = 1,
    sweeper: Sweeper | None = None,
    in_flight: int = 500,
    timeout: float = 30,
) -> list[Socket]:
    """``count`` viewers, at most ``in_flight`` of them connecting at once: every
    ``probe_every``-th a probe, the others quiet (read by ``sweeper``). Failures are counted
    in ``tally.errors`` and left out."""
    gate = asyncio.Semaphore(in_flight)
    sockets: list[Socket] = []

    async def one(n: int) -> None:
        quiet = sweeper if n % probe_every else None
        async with gate:
            try:
                sockets.append(await connect(url, tally, sweeper=quiet, timeout=timeout))
            except (OSError, TimeoutError, ConnectionError) as exc:
                tally.errors[f"connect: {exc!r}"[:200]] += 1

    await asyncio.gather(*(one(n) for n in range(count)))
    return sockets


def install_uvloop() -> None:
    """uvloop when it is there (uvicorn[standard] brings it): far fewer µs per callback."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def viewer_process(
    conn: Connection,
    url: str,
    count: int,
    in_flight: int,
    sample: int,
    probe_every: int,
    sweep_s: float,
) -> None:
    """Entry point of a viewer process: connect ``count`` viewers (every ``probe_every``-th a
    probe, the others quiet, swept every ``sweep_s``), then obey the pipe.

    Messages in: ``("go",)`` reset the counts (answered ``("counting",)``); ``("mark",)``
    start the CPU time and the other frames' counts; ``("stop", events, drain_s)`` wait until
    every viewer has ``events`` measured comments (at most ``drain_s``), answer
    ``("done", {...})`` with the figures and close. The first message out is
    ``("ready", {...})``, once the viewers are connected.
    """
    raise_nofile_limit()
    install_uvloop()
    asyncio.run(_viewers(conn, url, count, in_flight, sample, probe_every, sweep_s))


async def _viewers(
    conn: Connection,
    url: str,
    count: int,
    in_flight: int,
    sample: int,
    probe_every: int,
    sweep_s: float,
) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally(sample)
    sweeper = Sweeper(0.005)  # quick while the handshakes are answered
    sweeper.start()
    started = time.monotonic()
    sockets = await connect_many(
        url, count, tally, probe_every=probe_every, sweeper=sweeper, in_flight=in_flight
    )
    connect_s = time.monotonic() - started
    sweeper.interval = sweep_s
    probes = sum(1 for s in sockets if s.measure)
    ready = {"connected": len(sockets), "probes": probes, "connect_s": connect_s}
    conn.send(("ready", ready | _errors(tally)))
    cpu = os.times()
    while True:
        # A thread waits on the pipe: the loop's reader would make it non-blocking for sends.
        try:
            message = await asyncio.to_thread(conn.recv)
        except EOFError:  # the bench gave up
            break
        if message[0] == "go":
            tally.reset()
            for s in sockets:
                s.comments = s.frames = 0
                s.counting = True
            cpu = os.times()
            conn.send(("counting",))
        elif message[0] == "mark":  # the measured comments start: CPU and frames from now
            cpu = os.times()
            tally.types.clear()
        elif message[0] == "stop":
            _, events, drain_s = message
            deadline = loop.time() + drain_s
            expected = events * len(sockets)
            while sum(s.comments for s in sockets) < expected and loop.time() < deadline:
                await asyncio.sleep(0.05)
            now = os.times()
            user, system = now.user - cpu.user, now.system - cpu.system
            for s in sockets:
                s.counting = False
            per_viewer = [s.comments for s in sockets]
            samples = tally.samples
            conn.send(
                (
                    "done",
                    {
                        "viewers": len(sockets),
                        "deliveries": sum(per_viewer),
                        "min_per_viewer": min(per_viewer, default=0),
                        "max_per_viewer": max(per_viewer, default=0),
                        "incomplete_viewers": sum(1 for c in per_viewer if c < events),
                        "other_frames": dict(tally.types),
                        "samples": {k: v.decode("utf-8", "replace") for k, v in samples.items()},
                        "dropped": tally.dropped,
                        "last_delivery": tally.last_delivery,
                        "latencies": array("d", tally.latencies).tobytes(),
                        "cpu_s": user + system,
                        "cpu_user_s": user,
                        **_errors(tally),
                    },
                )
            )
            break
    for s in sockets:
        s.close()
    await asyncio.sleep(0.5)
    for s in sockets:
        if s.transport is not None:
            s.transport.abort()
    await sweeper.stop()
    conn.close()


def _errors(tally: Tally) -> dict[str, dict[str, int]]:
    return {"errors": dict(tally.errors), "closes": dict(tally.closes)}
