"""Where product images live: a small interface, the local-disk backend, and the decoding that
turns an upload into a clean image."""

import io
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from anyio import CapacityLimiter, to_thread
from PIL import ExifTags, Image

from originlive.errors import OriginliveError, PayloadTooLarge

# The only formats we keep, and the extension each is stored (and later served) under.
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\.(jpg|png|webp)$")

# Every phone's default photo (12 MP, 4000 x 3000) and then some; a 48 MP or larger
# full-resolution shot is refused. Decoded, 40 MP is at most 160 MB here and in each buyer's
# browser. No side over 10,000 px: a sliver within the pixel budget is no product photo.
MAX_PIXELS = 40_000_000
MAX_SIDE = 10_000
_OPENERS = ("JPEG", "PNG", "WEBP")
# Pillow names a JPEG with a multi-picture index (many phone cameras write one) MPO.
_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# Each format stays itself: JPEG and WebP lossy, at a quality that hides the second
# generation; PNG lossless (drawings, labels, transparency). No optimised or progressive
# JPEG: Pillow then encodes the whole photo in one call that holds the GIL, and the event
# loop stood still for 300 ms of a 4000 x 3000 one (in chunks, it waits 12 ms at most).
_ENCODERS: dict[str, dict[str, Any]] = {
    "image/jpeg": {"format": "JPEG", "quality": 85},
    "image/png": {"format": "PNG"},
    "image/webp": {"format": "WEBP", "quality": 85},
}
# How to turn a picture stored with each EXIF orientation so that it shows upright (the
# tag's value is whatever the file says, hence object).
_TURNS: dict[object, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Colour and transparency are part of the picture, so kept; all other metadata is dropped.
_KEPT_INFO = ("icc_profile", "transparency")
# Pillow's own decompression-bomb check only warns between its limit and twice that; ours
# (_check_size) refuses before a pixel is decoded, with a 413. This module is the app's only
# user of Pillow.
Image.MAX_IMAGE_PIXELS = None
# Decoding takes a core and up to a few hundred MB: two at a time at most, whatever the
# number of uploads, leaves the rest of the machine to the live rooms.
_DECODERS = CapacityLimiter(2)


class UnsupportedImage(OriginliveError):
    status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


@dataclass(frozen=True)
class CleanImage:
    """An upload decoded and encoded again: only its pixels, upright, in its own format."""

    data: bytes
    content_type: str


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


async def clean_image(data: bytes) -> CleanImage:
    """The upload decoded within the limits and re-encoded without metadata, off the event loop.

    The bytes alone decide the format, never the client's file name or content type. Raises
    UnsupportedImage for anything Pillow cannot fully decode as JPEG, PNG or WebP, and
    PayloadTooLarge for an image over MAX_PIXELS or MAX_SIDE.
    """
    return await to_thread.run_sync(_clean, data, limiter=_DECODERS)


def _clean(data: bytes) -> CleanImage:
    try:
        with Image.open(io.BytesIO(data), formats=_OPENERS) as image:
            _check_size(image.size)
            image.load()  # every pixel: a truncated or corrupt file fails here
            content_type = _FORMATS[str(image.format)]
            kept = {key: image.info[key] for key in _KEPT_INFO if key in image.info}
            upright = _upright(image)
            out = io.BytesIO()
            # An animated PNG or WebP keeps its first frame: a product photo is still.
            upright.save(out, **_ENCODERS[content_type], **kept)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow's ways of saying "not (all) an image": unidentified, truncated, corrupt.
        raise UnsupportedImage("Only complete JPEG, PNG and WebP images are accepted.") from exc
    return CleanImage(out.getvalue(), content_type)


def _upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says, with no metadata left on it."""
    # Not ImageOps.exif_transpose: it also rewrites the EXIF it keeps, and raises TypeError or
    # struct.error on a malformed block, which is about to be dropped anyway.
    turn = _TURNS.get(image.getexif().get(ExifTags.Base.Orientation))
    upright = image if turn is None else image.transpose(turn)
    upright.info = {}  # EXIF (GPS position, camera serial), XMP, comments, text chunks
    return upright


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise PayloadTooLarge(
            f"The image is {width} x {height} pixels; at most {MAX_PIXELS // 1_000_000} "
            f"megapixels and {MAX_SIDE} pixels a side are accepted."
        )
