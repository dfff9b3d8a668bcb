"""Catalog test set-up: a helper that opens shops and lists products, and hand-made images."""

import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Actor

SHOP = {"name": "武功猕猴桃合作社", "region_code": "610431", "description": "关中平原的果园"}
PRODUCT = {
    "title": "徐香猕猴桃 5斤装",
    "description": "树上自然熟，现摘现发",
    "category": "水果",
    "origin_region_code": "610431",
    "skus": [{"name": "5斤 中果", "price_cents": 3990, "stock": 100}],
}


def png(width: int = 1, height: int = 1) -> bytes:
    """A valid RGB PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\x4c\xaf\x50" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """The start and end of a JFIF file: enough for a format check."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def webp() -> bytes:
    """A RIFF/WEBP container with a lossless chunk whose sizes add up."""
    payload = b"\x2f\x00\x00\x00\x00\x88\x88\x08"
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


async def count(db: AsyncSession, model: type[Any]) -> int:
    """Rows in the model's table."""
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


@dataclass
class Catalog:
    """Arranges shops and products over the API, as merchants and operators would."""

    client: httpx.AsyncClient
    make_operator: Callable[[], Awaitable[Actor]]
    _operator: Actor | None = field(default=None, init=False)

    async def operator(self) -> Actor:
        if self._operator is None:
            self._operator = await self.make_operator()
        return self._operator

    async def shop(self, owner: Actor, *, approve: bool = True, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/shops", json=SHOP | fields, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        if approve:
            await self.approve(response.json()["id"])
        return dict(response.json())

    async def approve(self, shop_id: int) -> None:
        operator = await self.operator()
        response = await self.client.post(
            f"/api/v1/shops/{shop_id}/approve", headers=operator.headers
        )
        assert response.status_code == 200, response.text

    async def product(self, owner: Actor, shop_id: int, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/v1/shops/{shop_id}/products", json=PRODUCT | fields, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def upload(
        self,
        actor: Actor | None,
        product_id: int,
        data: bytes,
        *,
        filename: str = "photo.png",
        content_type: str = "image/png",
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/products/{product_id}/images",
            files={"file": (filename, data, content_type)},
            headers=actor.headers if actor else {},
        )


@pytest.fixture
def catalog(client: httpx.AsyncClient, make_operator: Callable[[], Awaitable[Actor]]) -> Catalog:
    """The catalog helper for this test."""
    return Catalog(client, make_operator)
