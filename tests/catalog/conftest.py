"""Catalog test set-up: a helper that opens shops and lists products, and images made by Pillow."""

import io
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image
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


def image(fmt: str, width: int = 4, height: int = 3, *, mode: str = "RGB", **params: Any) -> bytes:
    """A real image, drawn and encoded by Pillow in memory: red on its left half, blue on its
    right (so a turn shows), in ``fmt`` with Pillow's save ``params``."""
    picture = Image.new(mode, (width, height), "blue")
    picture.paste(Image.new(mode, (max(width // 2, 1), height), "red"))
    out = io.BytesIO()
    picture.save(out, fmt, **params)
    return out.getvalue()


def png(width: int = 1, height: int = 1, **params: Any) -> bytes:
    """A PNG made by Pillow."""
    return image("PNG", width, height, **params)


def jpeg(width: int = 4, height: int = 3, **params: Any) -> bytes:
    """A JPEG made by Pillow."""
    return image("JPEG", width, height, **params)


def webp(width: int = 4, height: int = 3, **params: Any) -> bytes:
    """A WebP made by Pillow."""
    return image("WEBP", width, height, **params)


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
        """Open a shop; without a ``name``, SHOP's, numbered from the second on ("... 2"):
        no two shops' names may look alike."""
        for n in itertools.count(1):
            name = fields.get("name", SHOP["name"] if n == 1 else f"{SHOP['name']} {n}")
            response = await self.client.post(
                "/api/v1/shops", json=SHOP | fields | {"name": name}, headers=owner.headers
            )
            if response.status_code != 409 or "name" in fields:
                break
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
