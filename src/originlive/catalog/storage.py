"""Where product images live: a small interface, the local-disk backend, and format sniffing."""

import os
import re
import secrets
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Protocol

from anyio import to_thread

# The only formats we keep, and the extension each is stored (and later served) under.
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\.(jpg|png|webp)$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageStorage(Protocol):
    """Keeps image bytes under opaque keys and tells where they are served from."""

    async def save(self, data: bytes, *, content_type: str) -> str: ...

    async def delete(self, key: str) -> None: ...

    def url(self, key: str) -> str: ...


class LocalImageStorage:
    """Files under ``root`` (served at ``base_url``), in folders sharded by a random name."""

    def __init__(self, root: Path, *, base_url: str = "/media") -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    async def save(self, data: bytes, *, content_type: str) -> str:
        """Write the bytes under a fresh random key; the client's file name is never used."""
        name = f"{secrets.token_hex(16)}.{EXTENSIONS[content_type]}"
        key = f"{name[:2]}/{name[2:4]}/{name}"
        await to_thread.run_sync(_write_atomically, self._path(key), data)
        return key

    async def delete(self, key: str) -> None:
        """Remove the file; a missing one is not an error."""
        await to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))

    def url(self, key: str) -> str:
        """The public URL of the file."""
        return f"{self.base_url}/{key}"

    def _path(self, key: str) -> Path:
        # Keys come from our own database, but a malformed one must never reach outside root.
        if not _KEY.match(key):
            raise ValueError(f"not an image key: {key!r}")
        return self.root / key


def _write_atomically(path: Path, data: bytes) -> None:
    # Readers (the /media static route) see the whole file or nothing: write a temporary file
    # beside it, flush it to disk, then rename it into place.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the web server must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sniff_image(data: bytes) -> str | None:
    """The content type the bytes really are (JPEG, PNG or WebP), or None.

    Decided from the bytes alone, never from the client's file name or content type. PNG and
    WebP are also walked far enough to refuse a valid header with something else tacked on.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(_PNG_SIGNATURE) and _png_intact(data):
        return "image/png"
    if (
        len(data) >= 16
        and data[:4] == b"RIFF"
        and data[8:12] == b"WEBP"
        and data[12:16] in {b"VP8 ", b"VP8L", b"VP8X"}
        and struct.unpack("<I", data[4:8])[0] + 8 == len(data)
    ):
        return "image/webp"
    return None


def _png_intact(data: bytes) -> bool:
    # Chunks are length, type, data, CRC; the first is IHDR and IEND ends the file exactly.
    pos, first = len(_PNG_SIGNATURE), True
    while pos + 12 <= len(data):
        length: int = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data) or (first and kind != b"IHDR"):
            return False
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return False
        if kind == b"IEND":
            return end == len(data)
        pos, first = end, False
    return False
