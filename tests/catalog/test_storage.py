"""Image storage and uploads: format sniffing, local files, and the upload routes."""

import struct
from pathlib import Path

import httpx
import pytest

from originlive.catalog.models import ProductImage
from originlive.catalog.storage import LocalImageStorage, sniff_image
from originlive.settings import Settings
from tests.catalog.conftest import Catalog, count, jpeg, png, webp

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_sniff_image() -> None:
    assert sniff_image(png()) == "image/png"
    assert sniff_image(png(3, 2)) == "image/png"
    assert sniff_image(jpeg()) == "image/jpeg"
    assert sniff_image(webp()) == "image/webp"
    broken_crc = bytearray(png())
    broken_crc[-20] ^= 0xFF
    for data in (
        b"",
        EXE,
        b"hello, this is text pretending to be a jpg\n",
        png() + EXE,  # a valid PNG with a program tacked on
        png()[:-12],  # no IEND
        b"\x89PNG\r\n\x1a\n" + EXE,  # the signature alone
        bytes(broken_crc),
        webp() + b"extra",  # RIFF size no longer adds up
        b"RIFF" + struct.pack("<I", 4) + b"WAVE",
        b"GIF89a\x01\x00\x01\x00",
    ):
        assert sniff_image(data) is None, data[:16]


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
    ("data", "content_type"), [(png(), "image/png"), (jpeg(), "image/jpeg"), (webp(), "image/webp")]
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
    assert image["content_type"] == content_type and image["size_bytes"] == len(data)
    assert image["url"].startswith("/media/") and "evil" not in image["url"]
    served = await client.get(image["url"])
    assert served.status_code == 200 and served.content == data
    assert files_under(settings.media_dir) == [settings.media_dir / image["url"][len("/media/") :]]

    read = (await client.get(f"/api/v1/products/{product['id']}")).json()
    assert read["images"] == [image]


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
    ("filename", "data", "content_type"),
    [
        ("setup.png", EXE, "image/png"),
        ("photo.png", png() + EXE, "image/png"),
        ("notes.jpg", b"just some text, honestly\n", "image/jpeg"),
        ("empty.webp", b"", "image/webp"),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),
    ],
    ids=["exe-as-png", "png-with-exe", "text-as-jpg", "empty", "gif"],
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
) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    response = await catalog.upload(
        owner, product["id"], data, filename=filename, content_type=content_type
    )
    assert response.status_code == 415, response.text
    assert response.json()["type"] == "/problems/unsupported-media-type"
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
