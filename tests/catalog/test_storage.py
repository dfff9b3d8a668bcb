"""Image storage and uploads: decoding and re-encoding, local files, and the upload routes."""

import io
import struct
import zlib
from functools import cache
from pathlib import Path

import httpx
import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from originlive.catalog.models import ProductImage
from originlive.catalog.storage import (
    MAX_SIDE,
    LocalImageStorage,
    UnsupportedImage,
    clean_image,
)
from originlive.errors import PayloadTooLarge
from originlive.settings import Settings
from tests.catalog.conftest import Catalog, count, image, jpeg, png, webp

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"
ZIP = b"PK\x03\x04" + b"\x00" * 26 + b"PK\x05\x06" + b"\x00" * 18
# As the tester sent it: a JPEG's first three bytes, a page with a script, then an archive.
POLYGLOT = b"\xff\xd8\xff<html><script>alert(document.cookie)</script></html>" + ZIP
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@cache
def bomb() -> bytes:
    """A valid 20,000 x 20,000 PNG of 48 KB: 400 megapixels, over a GiB once in RGBA."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    side = 20_000
    row = bytes(1 + side // 8)  # filter byte, then a bit a pixel
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    pixels = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def opened(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def orchard_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: the camera, and where the photo was taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "OrchardCam"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (34.0, 15.0, 30.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (108.0, 12.0, 0.0),
    }
    return exif


@pytest.mark.parametrize(
    ("data", "content_type", "fmt"),
    [
        (png(8, 6), "image/png", "PNG"),
        (jpeg(8, 6), "image/jpeg", "JPEG"),
        (webp(8, 6), "image/webp", "WEBP"),
        (webp(8, 6, lossless=True), "image/webp", "WEBP"),
    ],
    ids=["png", "jpeg", "webp", "webp-lossless"],
)
async def test_clean_image_keeps_the_format(data: bytes, content_type: str, fmt: str) -> None:
    clean = await clean_image(data)
    assert clean.content_type == content_type
    stored = opened(clean.data)
    assert stored.format == fmt and stored.size == (8, 6)


async def test_clean_image_drops_exif_and_its_gps_position() -> None:
    photo = jpeg(40, 30, exif=orchard_exif(), xmp=b"<x:xmpmeta>GPSLatitude 34</x:xmpmeta>")
    assert opened(photo).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the phone's position
    clean = await clean_image(photo)
    stored = opened(clean.data)
    assert not stored.getexif() and "exif" not in stored.info and "xmp" not in stored.info
    for trace in (b"Exif", b"OrchardCam", b"GPS", b"xmpmeta"):
        assert trace not in clean.data


async def test_clean_image_turns_the_photo_upright() -> None:
    # Stored sideways, as a phone held upright stores it (red left, blue right): orientation 6
    # says "turn a quarter clockwise to show", so red ends up on top.
    clean = await clean_image(jpeg(40, 20, exif=orchard_exif(orientation=6)))
    stored = opened(clean.data).convert("RGB")
    assert stored.size == (20, 40)
    red, blue = stored.getpixel((10, 5)), stored.getpixel((10, 35))
    assert isinstance(red, tuple) and isinstance(blue, tuple)
    assert red[0] > 200 > red[2] and blue[2] > 200 > blue[0]


async def test_clean_image_drops_text_but_keeps_colour_and_transparency() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "<html><script>alert(1)</script></html>")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    labelled = image("PNG", 4, 4, mode="RGBA", pnginfo=text, icc_profile=srgb)
    clean = await clean_image(labelled)
    assert b"script" not in clean.data
    stored = opened(clean.data)
    assert stored.mode == "RGBA" and stored.info["icc_profile"] == srgb
    # A palette image's transparent colour stays transparent.
    clean = await clean_image(image("PNG", 4, 4, mode="P", transparency=0))
    assert "transparency" in opened(clean.data).info


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
async def test_clean_image_keeps_the_first_frame_of_an_animation(fmt: str) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert opened(out.getvalue()).n_frames == 3
    stored = opened((await clean_image(out.getvalue())).data)
    assert getattr(stored, "n_frames", 1) == 1
    red = stored.convert("RGB").getpixel((4, 4))
    assert isinstance(red, tuple) and red[0] > 200 > red[1]


async def test_clean_image_drops_what_follows_the_image() -> None:
    # Android's motion photos are a JPEG followed by a video: the picture is kept, the rest,
    # whatever it is, is not.
    clean = await clean_image(jpeg(8, 6) + ZIP + EXE)
    assert clean.content_type == "image/jpeg"
    assert b"PK\x03\x04" not in clean.data and b"MZ" not in clean.data


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    "data",
    [
        POLYGLOT,
        truncated(jpeg(64, 48)),
        truncated(jpeg(64, 48, progressive=True)),
        truncated(png(64, 48)),
        truncated(webp(64, 48)),
        SVG,
        GIF,
        EXE,
        b"\x89PNG\r\n\x1a\n" + EXE,  # the signature alone
        b"hello, this is text pretending to be a jpg\n",
        b"",
    ],
    ids=[
        "polyglot",
        "truncated-jpeg",
        "truncated-progressive-jpeg",
        "truncated-png",
        "truncated-webp",
        "svg",
        "gif",
        "exe",
        "png-signature-then-exe",
        "text",
        "empty",
    ],
)
async def test_clean_image_refuses_what_is_not_a_whole_image(data: bytes) -> None:
    with pytest.raises(UnsupportedImage):
        await clean_image(data)


async def test_clean_image_refuses_huge_images_from_their_header() -> None:
    with pytest.raises(PayloadTooLarge, match="20000 x 20000"):
        await clean_image(bomb())
    with pytest.raises(PayloadTooLarge):
        await clean_image(png(MAX_SIDE + 1, 1))
    assert (await clean_image(png(MAX_SIDE, 1))).content_type == "image/png"


async def test_local_storage(tmp_path: Path) -> None:
    storage = LocalImageStorage(tmp_path)
    first = await storage.save(png(), content_type="image/png")
    second = await storage.save(jpeg(), content_type="image/jpeg")
    assert first != second
    assert first.endswith(".png") and second.endswith(".jpg")
    shard, subshard, name = first.split("/")
    assert name.startswith(shard + subshard) and len(name) == 36
    assert (tmp_path / first).read_bytes() == png()
    # Written atomically: no temporary file is left beside it.
    assert files_under(tmp_path) == sorted([tmp_path / first, tmp_path / second])
    assert storage.url(first) == f"/media/{first}"

    await storage.delete(first)
    await storage.delete(first)  # already gone: fine
    assert files_under(tmp_path) == [tmp_path / second]
    for bad in ("../../etc/passwd", "/etc/passwd", "ab/cd/../../x.png", "ab/cd/name.exe"):
        with pytest.raises(ValueError):
            await storage.delete(bad)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(png(8, 6), "image/png"), (jpeg(8, 6), "image/jpeg"), (webp(8, 6), "image/webp")],
    ids=["png", "jpeg", "webp"],
)
async def test_upload_is_stored_and_served(
    client: httpx.AsyncClient,
    make_user,
    catalog: Catalog,
    settings: Settings,
    data: bytes,
    content_type: str,
) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    # The client's name and type are ignored: the bytes decide.
    response = await catalog.upload(
        owner, product["id"], data, filename="../../evil.exe", content_type="text/plain"
    )
    assert response.status_code == 201, response.text
    image = response.json()
    assert image["content_type"] == content_type
    assert image["url"].startswith("/media/") and "evil" not in image["url"]
    served = await client.get(image["url"])
    assert served.status_code == 200 and image["size_bytes"] == len(served.content)
    assert served.headers["content-type"] == content_type
    assert served.headers["x-content-type-options"] == "nosniff"
    assert opened(served.content).size == (8, 6)
    assert files_under(settings.media_dir) == [settings.media_dir / image["url"][len("/media/") :]]

    read = (await client.get(f"/api/v1/products/{product['id']}")).json()
    assert read["images"] == [image]


async def test_uploaded_photo_is_stored_without_its_position(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    photo = jpeg(40, 20, exif=orchard_exif(orientation=6))
    response = await catalog.upload(owner, product["id"], photo, filename="IMG_0001.jpg")
    assert response.status_code == 201, response.text
    served = await client.get(response.json()["url"])
    assert b"OrchardCam" not in served.content and b"Exif" not in served.content
    assert opened(served.content).size == (20, 40)


async def test_delete_image_removes_file(
    client: httpx.AsyncClient, make_user, catalog: Catalog, settings: Settings, db
) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    image = (await catalog.upload(owner, product["id"], png())).json()
    url = f"/api/v1/products/{product['id']}/images/{image['id']}"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert files_under(settings.media_dir) == []
    assert await count(db, ProductImage) == 0
    assert (await client.get(image["url"])).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404


@pytest.mark.parametrize(
    ("filename", "data", "content_type", "status", "problem"),
    [
        ("photo.jpg", POLYGLOT, "image/jpeg", 415, "unsupported-media-type"),
        ("photo.jpg", truncated(jpeg(64, 48)), "image/jpeg", 415, "unsupported-media-type"),
        ("setup.png", EXE, "image/png", 415, "unsupported-media-type"),
        ("logo.svg", SVG, "image/svg+xml", 415, "unsupported-media-type"),
        ("empty.webp", b"", "image/webp", 415, "unsupported-media-type"),
        ("anim.gif", GIF, "image/gif", 415, "unsupported-media-type"),
        ("field.png", bomb(), "image/png", 413, "payload-too-large"),
    ],
    ids=["polyglot", "truncated", "exe-as-png", "svg", "empty", "gif", "bomb"],
)
async def test_bad_uploads_write_nothing(
    client: httpx.AsyncClient,
    make_user,
    catalog: Catalog,
    settings: Settings,
    db,
    filename: str,
    data: bytes,
    content_type: str,
    status: int,
    problem: str,
) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    response = await catalog.upload(
        owner, product["id"], data, filename=filename, content_type=content_type
    )
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"/problems/{problem}"
    assert await count(db, ProductImage) == 0
    assert files_under(settings.media_dir) == []


async def test_upload_needs_a_file_and_a_size_limit(
    client: httpx.AsyncClient, make_user, catalog: Catalog, settings: Settings, db
) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    url = f"/api/v1/products/{product['id']}/images"
    missing = await client.post(url, data={"note": "no file"}, headers=owner.headers)
    assert missing.status_code == 422
    huge = png() + b"\x00" * settings.max_upload_bytes
    too_big = await catalog.upload(owner, product["id"], huge)
    assert too_big.status_code == 413
    assert await count(db, ProductImage) == 0
    assert files_under(settings.media_dir) == []


async def test_image_limit(make_user, catalog: Catalog, db) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    for _ in range(20):
        assert (await catalog.upload(owner, product["id"], png())).status_code == 201
    assert (await catalog.upload(owner, product["id"], png())).status_code == 409
    assert await count(db, ProductImage) == 20
