"""The RTMP server against what an attacker or a broken encoder sends, and AMF0 both ways."""

import asyncio
import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from originlive.media import rtmp

amf_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.dictionaries(st.text(min_size=1, max_size=10), children, max_size=5),
    max_leaves=20,
)


@given(st.lists(amf_values, max_size=5))
def test_amf0_round_trip(values) -> None:
    assert rtmp.amf0_decode_all(rtmp.amf0_encode(*values)) == values


def test_flv_tag_layout() -> None:
    tag = rtmp.flv_tag(rtmp.VIDEO, 0x12345678, b"abc")
    assert tag[0] == 9 and tag[1:4] == b"\x00\x00\x03"
    assert tag[4:7] == b"\x34\x56\x78" and tag[7] == 0x12  # 24 low bits, then the high byte
    assert tag[11:14] == b"abc" and struct.unpack(">I", tag[-4:])[0] == 14


class Server:
    def __init__(self, **options) -> None:
        self.asked: list[rtmp.PublishRequest] = []
        self.options = options

    async def authorize(self, request, connection):
        self.asked.append(request)
        return "no"

    async def __aenter__(self):
        self.server = rtmp.RtmpServer(self.authorize, **self.options)
        self.port = await self.server.start("127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        await self.server.close()


async def shake(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c1 = bytes(8) + os.urandom(1528)
    writer.write(b"\x03" + c1)
    answer = await reader.readexactly(1 + 2 * 1536)
    assert answer[0] == 3 and answer[1 + 1536 + 8 :] == c1[8:]  # S2 echoes C1
    writer.write(answer[1 : 1 + 1536])  # C2
    return reader, writer


async def closed(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(5):
        while await reader.read(65536):
            pass
    return True


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(min_size=1, max_size=3000))
async def test_garbage_after_the_handshake_never_breaks_the_server(garbage, caplog) -> None:
    async with Server() as server:
        reader, writer = await shake(server.port)
        writer.write(garbage)
        await writer.drain()
        writer.write_eof()
        assert await closed(reader)
        writer.close()
        # The server still takes a connection, and nothing went wrong unhandled.
        reader, writer = await shake(server.port)
        writer.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_a_huge_message_or_chunk_size_is_refused() -> None:
    async with Server() as server:
        for message in (
            # A chunk of stream 3 announcing a 16 MB command (over the 8 MB we take)
            bytes([0x03]) + b"\x00\x00\x00" + b"\xff\xff\xff" + b"\x14" + bytes(4),
            # Set Chunk Size to 2^30
            bytes([0x02])
            + b"\x00\x00\x00"
            + b"\x00\x00\x04"
            + b"\x01"
            + bytes(4)
            + struct.pack(">I", 1 << 30),
        ):
            reader, writer = await shake(server.port)
            writer.write(message)
            assert await closed(reader)
            writer.close()


async def test_a_wrong_version_is_refused() -> None:
    async with Server() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x06" + bytes(1536))
        assert await closed(reader)
        writer.close()


async def test_publish_goes_to_authorize_with_the_key_without_its_query() -> None:
    async with Server() as server:
        reader, writer = await shake(server.port)
        connect = rtmp.amf0_encode("connect", 1, {"app": "live", "tcUrl": "rtmp://x/live"})
        publish = rtmp.amf0_encode("publish", 4, None, "live_KEY?x=1", "live")
        for csid, stream, payload in ((3, 0, connect), (8, 1, publish)):
            header = bytes([csid]) + b"\x00\x00\x00" + len(payload).to_bytes(3, "big") + b"\x14"
            header += struct.pack("<I", stream)
            chunks = [payload[i : i + 128] for i in range(0, len(payload), 128)]
            writer.write(
                header
                + b"".join(c if i == 0 else bytes([0xC0 | csid]) + c for i, c in enumerate(chunks))
            )
        assert await closed(reader)  # refused: "no"
        writer.close()
    assert server.asked == [
        rtmp.PublishRequest(app="live", name="live_KEY", peer=server.asked[0].peer)
    ]


async def test_a_silent_connection_is_closed() -> None:
    async with Server(idle_timeout=0.5) as server:
        reader, writer = await shake(server.port)
        started = asyncio.get_running_loop().time()
        assert await closed(reader)
        assert asyncio.get_running_loop().time() - started < 3
        writer.close()
