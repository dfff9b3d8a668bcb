"""An RTMP server for publishers only: the handshake, the chunk stream, the AMF0 commands an
encoder sends (OBS, phone apps, ffmpeg), and its audio, video and metadata as FLV tags.

Why our own: the stream key must be checked before any media is accepted, and ffmpeg's own
listener (``-listen 1``) logs a wrong stream name and then records it anyway. The one Python
RTMP server on the package index (pyrtmp 0.3) sets the root logger to DEBUG when imported and
parses every field through bitstring; what a publisher needs is a few hundred lines of
``struct``.

References: Adobe's RTMP specification 1.0 (handshake, chunking, protocol control messages)
and the AMF0 specification. Only what publishing needs is here: no playing, no AMF3 values.
"""

import asyncio
import contextlib
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

HANDSHAKE_SIZE = 1536
MAX_CHUNK_SIZE = 1 << 24  # what we accept a publisher to set (the spec allows 2^31 - 1)
MAX_MESSAGE_SIZE = 8 << 20  # one frame of video; a bigger "message" is an attack
ACK_WINDOW = 2_500_000
OUT_CHUNK_SIZE = 4096

# Message types
SET_CHUNK_SIZE = 1
ABORT = 2
ACK = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
COMMAND_AMF3 = 17
DATA_AMF0 = 18
COMMAND_AMF0 = 20

FLV_HEADER = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"  # audio and video, then tag size 0


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is closed."""


# AMF0


class _Undefined:
    pass


UNDEFINED = _Undefined()


class EcmaArray(dict[str, Any]):
    """An AMF0 ECMA array (what onMetaData carries), kept apart from plain objects."""


def amf0_decode(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """One AMF0 value at ``pos``, and where the next begins."""
    try:
        marker = data[pos]
        pos += 1
        if marker == 0x00:
            return struct.unpack_from(">d", data, pos)[0], pos + 8
        if marker == 0x01:
            return data[pos] != 0, pos + 1
        if marker == 0x02:
            (n,) = struct.unpack_from(">H", data, pos)
            return data[pos + 2 : pos + 2 + n].decode("utf-8", "replace"), pos + 2 + n
        if marker == 0x0C:
            (n,) = struct.unpack_from(">I", data, pos)
            return data[pos + 4 : pos + 4 + n].decode("utf-8", "replace"), pos + 4 + n
        if marker in (0x03, 0x08):
            out: dict[str, Any] = {} if marker == 0x03 else EcmaArray()
            if marker == 0x08:
                pos += 4  # the count is a hint; the end marker ends it
            while True:
                (n,) = struct.unpack_from(">H", data, pos)
                pos += 2
                if n == 0 and data[pos] == 0x09:
                    return out, pos + 1
                key = data[pos : pos + n].decode("utf-8", "replace")
                out[key], pos = amf0_decode(data, pos + n)
        if marker == 0x0A:
            (n,) = struct.unpack_from(">I", data, pos)
            pos += 4
            items = []
            for _ in range(min(n, len(data))):
                item, pos = amf0_decode(data, pos)
                items.append(item)
            return items, pos
        if marker == 0x05:
            return None, pos
        if marker == 0x06:
            return UNDEFINED, pos
        if marker == 0x0B:
            return struct.unpack_from(">d", data, pos)[0], pos + 10
    except (IndexError, struct.error) as exc:
        raise ProtocolError("truncated AMF0 value") from exc
    raise ProtocolError(f"unsupported AMF0 marker {marker:#x}")


def amf0_decode_all(data: bytes) -> list[Any]:
    """Every AMF0 value in ``data``."""
    values, pos = [], 0
    while pos < len(data):
        value, pos = amf0_decode(data, pos)
        values.append(value)
    return values


def amf0_encode(*values: Any) -> bytes:
    """AMF0 values, one after another."""
    out = bytearray()
    for value in values:
        if value is None:
            out += b"\x05"
        elif isinstance(value, bool):
            out += b"\x01" + (b"\x01" if value else b"\x00")
        elif isinstance(value, int | float):
            out += b"\x00" + struct.pack(">d", float(value))
        elif isinstance(value, str):
            raw = value.encode()
            out += b"\x02" + struct.pack(">H", len(raw)) + raw
        elif isinstance(value, dict):
            out += (
                b"\x08" + struct.pack(">I", len(value)) if isinstance(value, EcmaArray) else b"\x03"
            )
            for key, item in value.items():
                raw = key.encode()
                out += struct.pack(">H", len(raw)) + raw + amf0_encode(item)
            out += b"\x00\x00\x09"
        else:
            raise TypeError(f"no AMF0 encoding for {type(value).__name__}")
    return bytes(out)


# FLV


def flv_tag(kind: int, timestamp: int, payload: bytes) -> bytes:
    """One FLV tag (audio 8, video 9, script 18) with its trailing size."""
    size = len(payload)
    ts = timestamp & 0xFFFFFFFF
    header = bytes([kind]) + size.to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
    header += bytes([ts >> 24]) + b"\x00\x00\x00"
    return header + payload + struct.pack(">I", 11 + size)


def is_keyframe(video: bytes) -> bool:
    """Whether an FLV video payload starts a picture that decodes on its own."""
    return bool(video) and video[0] >> 4 == 1


def is_sequence_header(kind: int, payload: bytes) -> bool:
    """Whether an audio or video payload is the codec's configuration (AAC or AVC)."""
    if kind == VIDEO:
        return len(payload) > 1 and payload[0] & 0x0F == 7 and payload[1] == 0
    return len(payload) > 1 and payload[0] >> 4 == 10 and payload[1] == 0


# The server


class Publication(Protocol):
    """What a publisher's media goes to, once its stream key is accepted."""

    async def media(self, kind: int, timestamp: int, payload: bytes) -> None:
        """An audio (8), video (9) or metadata (18, AMF0 ``onMetaData``) message."""

    async def close(self) -> None:
        """The publisher is gone (or was put out)."""


@dataclass(frozen=True)
class PublishRequest:
    """A publisher asks to publish ``name`` (its stream key) to ``app``."""

    app: str
    name: str
    peer: str


# Decides on a publish: a Publication, or the reason it is refused.
Authorize = Callable[[PublishRequest, "RtmpConnection"], Awaitable["Publication | str"]]


@dataclass
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    buffer: bytearray = field(default_factory=bytearray)


class RtmpConnection:
    """One publisher's connection: reads chunks, answers commands, hands media on."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        authorize: Authorize,
        *,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 20.0,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.authorize = authorize
        self.handshake_timeout = handshake_timeout
        # An encoder sends audio every few tens of ms: silence this long means its network
        # is gone (a dead TCP connection can stay "open" for hours), and the grace period
        # should start now.
        self.idle_timeout = idle_timeout
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.app = ""
        self.publication: Publication | None = None
        self._in_chunk_size = 128
        self._streams: dict[int, _ChunkStream] = {}
        self._received = 0
        self._acked = 0
        self._ack_window = ACK_WINDOW
        self._buf = bytearray()
        self._closed = False

    # Reading

    async def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            async with asyncio.timeout(self.idle_timeout):
                data = await self.reader.read(65536)
            if not data:
                raise EOFError
            self._buf += data
            self._received += len(data)

    async def _take(self, n: int) -> bytes:
        await self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def _handshake(self) -> None:
        c0c1 = await self._take(1 + HANDSHAKE_SIZE)
        if c0c1[0] != 3:
            raise ProtocolError(f"RTMP version {c0c1[0]}, not 3")
        c1 = c0c1[1:]
        s1 = struct.pack(">II", 0, 0) + os.urandom(HANDSHAKE_SIZE - 8)
        now = int(time.monotonic() * 1000) & 0xFFFFFFFF
        s2 = c1[:4] + struct.pack(">I", now) + c1[8:]  # C1 echoed, as the simple handshake asks
        self.writer.write(b"\x03" + s1 + s2)
        await self.writer.drain()
        await self._take(HANDSHAKE_SIZE)  # C2

    async def _read_message(self) -> tuple[_ChunkStream, bytes]:
        """The next whole message, put together from its chunks."""
        while True:
            await self._fill(1)
            first = self._buf[0]
            fmt, csid = first >> 6, first & 0x3F
            head = 1
            if csid == 0:
                await self._fill(2)
                csid, head = self._buf[1] + 64, 2
            elif csid == 1:
                await self._fill(3)
                csid, head = self._buf[1] + self._buf[2] * 256 + 64, 3
            size = (11, 7, 3, 0)[fmt]
            await self._fill(head + size)
            cs = self._streams.get(csid)
            if cs is None:
                if fmt != 0:
                    raise ProtocolError(f"chunk stream {csid} begins without a full header")
                cs = self._streams[csid] = _ChunkStream()
            new_message = not cs.buffer
            buf = self._buf
            if fmt <= 2:
                field_ts = int.from_bytes(buf[head : head + 3], "big")
                cs.extended = field_ts == 0xFFFFFF
            if fmt <= 1:
                cs.length = int.from_bytes(buf[head + 3 : head + 6], "big")
                cs.type_id = buf[head + 6]
                if cs.length > MAX_MESSAGE_SIZE:
                    raise ProtocolError(f"a message of {cs.length} bytes")
            if fmt == 0:
                cs.stream_id = int.from_bytes(buf[head + 7 : head + 11], "little")
            pos = head + size
            if cs.extended:
                await self._fill(pos + 4)
                ext = int.from_bytes(self._buf[pos : pos + 4], "big")
                pos += 4
                if fmt <= 2:
                    field_ts = ext
            if new_message:
                if fmt == 0:
                    cs.timestamp, cs.delta = field_ts, field_ts
                elif fmt in (1, 2):
                    cs.delta = field_ts
                    cs.timestamp = (cs.timestamp + field_ts) & 0xFFFFFFFF
                else:
                    cs.timestamp = (cs.timestamp + cs.delta) & 0xFFFFFFFF
            elif fmt != 3:
                raise ProtocolError("a new header in the middle of a message")
            n = min(self._in_chunk_size, cs.length - len(cs.buffer))
            await self._fill(pos + n)
            cs.buffer += self._buf[pos : pos + n]
            del self._buf[: pos + n]
            await self._acknowledge()
            if len(cs.buffer) >= cs.length:
                payload = bytes(cs.buffer)
                cs.buffer.clear()
                return cs, payload

    async def _acknowledge(self) -> None:
        if self._received - self._acked >= self._ack_window:
            self._acked = self._received
            self._send(2, ACK, 0, struct.pack(">I", self._received & 0xFFFFFFFF))

    # Writing

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes) -> None:
        header = bytes([csid]) + struct.pack(">I", 0)[1:] + len(payload).to_bytes(3, "big")
        header += bytes([type_id]) + struct.pack("<I", stream_id)
        parts = [header, payload[:OUT_CHUNK_SIZE]]
        for start in range(OUT_CHUNK_SIZE, len(payload), OUT_CHUNK_SIZE):
            parts += [bytes([0xC0 | csid]), payload[start : start + OUT_CHUNK_SIZE]]
        self.writer.write(b"".join(parts))

    def _command(self, stream_id: int, *values: Any) -> None:
        self._send(3 if stream_id == 0 else 5, COMMAND_AMF0, stream_id, amf0_encode(*values))

    def _status(self, level: str, code: str, description: str) -> None:
        info = {"level": level, "code": code, "description": description}
        self._command(1, "onStatus", 0, None, info)

    # The session

    async def run(self) -> None:
        """Serve the connection until the publisher leaves, breaks the protocol or is refused."""
        try:
            await asyncio.wait_for(self._handshake(), self.handshake_timeout)
            while not self._closed:
                cs, payload = await self._read_message()
                await self._dispatch(cs, payload)
        except (EOFError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except TimeoutError:
            log.info("rtmp %s: silent for too long", self.peer)
        except ProtocolError as exc:
            log.info("rtmp %s: %s", self.peer, exc)
        except Exception:
            log.exception("rtmp %s: failed", self.peer)
        finally:
            await self.close()

    async def close(self) -> None:
        """Put the publisher out and close its publication (once)."""
        if self._closed and self.publication is None:
            return
        self._closed = True
        publication, self.publication = self.publication, None
        if publication is not None:
            await publication.close()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    async def refuse(self, code: str, description: str) -> None:
        """Tell the publisher why, then close."""
        self._status("error", code, description)
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        await self.close()

    async def _dispatch(self, cs: _ChunkStream, payload: bytes) -> None:
        kind = cs.type_id
        if kind in (AUDIO, VIDEO, DATA_AMF0):
            if self.publication is not None:
                if kind == DATA_AMF0:
                    metadata = _metadata(payload)
                    if metadata is None:
                        return
                    payload = metadata
                await self.publication.media(kind, cs.timestamp, payload)
        elif kind == SET_CHUNK_SIZE:
            if len(payload) < 4:
                raise ProtocolError("short chunk size message")
            size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if not 1 <= size <= MAX_CHUNK_SIZE:
                raise ProtocolError(f"chunk size {size}")
            self._in_chunk_size = size
        elif kind == WINDOW_ACK_SIZE and len(payload) >= 4:
            self._ack_window = max(struct.unpack(">I", payload[:4])[0], 4096)
        elif kind == ABORT and len(payload) >= 4:
            stream = self._streams.get(struct.unpack(">I", payload[:4])[0])
            if stream is not None:
                stream.buffer.clear()
        elif kind in (COMMAND_AMF0, COMMAND_AMF3):
            if kind == COMMAND_AMF3:
                payload = payload[1:]  # a zero byte, then AMF0
            await self._on_command(amf0_decode_all(payload))
        # Acknowledgements, user control (ping replies) and the rest need no answer.

    async def _on_command(self, values: list[Any]) -> None:
        if not values or not isinstance(values[0], str):
            raise ProtocolError("a command without a name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        if name == "connect":
            info = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            self.app = str(info.get("app", "")).strip("/")
            self._send(2, WINDOW_ACK_SIZE, 0, struct.pack(">I", ACK_WINDOW))
            self._send(2, SET_PEER_BANDWIDTH, 0, struct.pack(">IB", ACK_WINDOW, 2))
            self._send(2, SET_CHUNK_SIZE, 0, struct.pack(">I", OUT_CHUNK_SIZE))
            self._command(
                0,
                "_result",
                txn,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31},
                {
                    "level": "status",
                    "code": "NetConnection.Connect.Success",
                    "description": "Connection succeeded.",
                    "objectEncoding": 0,
                },
            )
        elif name in ("releaseStream", "FCPublish", "FCUnpublish"):
            self._command(0, "_result", txn, None)
        elif name == "createStream":
            self._command(0, "_result", txn, None, 1)
        elif name == "publish":
            await self._on_publish(values)
        elif name in ("deleteStream", "closeStream"):
            await self.close()
        if not self._closed:
            await self.writer.drain()

    async def _on_publish(self, values: list[Any]) -> None:
        if self.publication is not None:
            raise ProtocolError("a second publish on one connection")
        raw = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
        request = PublishRequest(app=self.app, name=raw.split("?", 1)[0], peer=self.peer)
        answer = await self.authorize(request, self)
        if isinstance(answer, str):
            log.info("rtmp %s: publish to %r refused: %s", self.peer, self.app, answer)
            await self.refuse("NetStream.Publish.BadName", answer)
            return
        self.publication = answer
        self._send(2, USER_CONTROL, 0, struct.pack(">HI", 0, 1))  # Stream Begin, stream 1
        self._status("status", "NetStream.Publish.Start", "Publishing.")


def _metadata(payload: bytes) -> bytes | None:
    """An ``@setDataFrame onMetaData`` message as FLV script data (``onMetaData`` + array)."""
    try:
        values = amf0_decode_all(payload)
    except ProtocolError:
        return None
    if values and values[0] == "@setDataFrame":
        values = values[1:]
    if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
        return None  # other data messages (cue points, text) are not kept
    return amf0_encode("onMetaData", EcmaArray(values[1]))


class RtmpServer:
    """Listens for publishers; each connection is served by an :class:`RtmpConnection`."""

    def __init__(self, authorize: Authorize, *, idle_timeout: float = 20.0) -> None:
        self.authorize = authorize
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[RtmpConnection] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; the port actually bound (``port`` 0 picks one)."""
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = RtmpConnection(reader, writer, self.authorize, idle_timeout=self.idle_timeout)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def close(self) -> None:
        """Stop listening and put every publisher out."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            await connection.close()
        if self._server is not None:
            await self._server.wait_closed()
