"""JSON routes of the catalog: shops and their review, products, SKUs, provenance, images."""

from collections.abc import Iterator, Sequence
from functools import partial
from itertools import chain
from typing import Annotated, Any

import pydantic_core
from fastapi import File, Query, Request, Response, UploadFile, status
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import CurrentUser, Operator, OptionalUser
from originlive.catalog import schemas, service
from originlive.catalog.deps import (
    OffSaleDep,
    OwnedProduct,
    OwnedShop,
    OwnedSku,
    RowId,
    ShopListScope,
    Storage,
    VisibleProduct,
    VisibleShop,
    can_manage,
)
from originlive.catalog.models import Product, Shop
from originlive.catalog.storage import ImageStorage
from originlive.db import SessionDep
from originlive.errors import InvalidInput
from originlive.inputs import MAX_ID
from originlive.regions.models import Region
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["catalog"])

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=100_000)]
RegionFilter = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{6,12}$", description="A region code; every region below it counts."),
]

SEARCH_DESCRIPTION = """\
Products on sale (active, in approved shops), as a page: `items`, `total` (matches across all
pages), `limit`, `offset`.

`q` matches Chinese or English text anywhere in the title, description, category, shop name
and origin place names; every word must match, and products matching in their title come
first, then the newest. `region` takes any region code and includes everything below it
(a province finds its counties' products). `shop` and `category` narrow further.
"""


async def _shops_out(session: AsyncSession, shops: Sequence[Shop]) -> list[schemas.Shop]:
    names = await service.place_names(session, places=(s.region for s in shops))
    followers = await service.follower_counts(session, shop_ids=[s.id for s in shops])
    return [
        schemas.Shop.model_validate(s, context={"place_names": names}).model_copy(
            update={"followers": followers.get(s.id, 0)}
        )
        for s in shops
    ]


def _places(product: Product) -> Iterator[Region | None]:
    yield product.shop.region
    yield product.origin
    yield from (e.place_region for e in product.provenance)


def _page_json(conn: Connection, *, limit: int, offset: int, **listing: Any) -> bytes | None:
    """A ``schemas.Page`` of products read by ``service.read_product_page``, as JSON (None
    for an unknown region). The items are already what ``schemas.Product`` would show, so
    they skip FastAPI's validation and serialization of the response model (which stays the
    routes' documented shape)."""
    page = service.read_product_page(conn, limit=limit, offset=offset, **listing)
    if page is None:
        return None
    items, total = page
    return pydantic_core.to_json({"items": items, "total": total, "limit": limit, "offset": offset})


async def _product_page(request: Request, **listing: Any) -> bytes | None:
    """``_page_json`` on SQLite's reader, kept there until something commits, or for as long
    as a shared page when what commits is not an ORM change of this process (orders taking
    stock, likes: ``service.kept``; the image storage's URLs are fixed, so a kept page's stay
    right). On PostgreSQL on a
    connection of the requests' pool: its reader is one connection, which the order path's
    lookups must not wait behind a search for."""
    state = request.app.state
    read = partial(_page_json, image_url=state.image_storage.url, **listing)
    key = ("products", *sorted(listing.items()))
    body: bytes | None
    if state.engine.dialect.name == "sqlite":
        cache = state.page_cache
        body = await state.reader.run(
            service.kept, key=key, read=read, generation=cache.commits, fresh_for=cache.max_age
        )
    else:
        async with state.engine.connect() as conn:
            body = await conn.run_sync(read)
    return body


async def _products_out(
    session: AsyncSession, storage: ImageStorage, products: Sequence[Product]
) -> list[schemas.Product]:
    names = await service.place_names(session, places=chain.from_iterable(map(_places, products)))
    context = {"place_names": names, "storage": storage}
    return [schemas.Product.model_validate(p, context=context) for p in products]


# Shops


@router.post("/shops", status_code=status.HTTP_201_CREATED, response_model=schemas.Shop)
async def open_shop(
    body: schemas.ShopCreate, request: Request, session: SessionDep, user: CurrentUser
) -> schemas.Shop:
    """Open a shop; it sells once an operator approves it. The owner becomes a merchant."""
    approve = request.app.state.settings.auto_approve_shops
    shop = await service.open_shop(session, owner=user, data=body, approve=approve)
    return (await _shops_out(session, [shop]))[0]


@router.get("/shops", response_model=schemas.Page[schemas.Shop])
async def list_shops(
    session: SessionDep,
    scope: ShopListScope,
    region: RegionFilter = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> schemas.Page[schemas.Shop]:
    """Approved shops, newest first; ``mine=true`` for the caller's own shops in any state."""
    shops, total = await service.list_shops(
        session,
        statuses=scope.statuses,
        owner_id=scope.owner_id,
        region_code=region,
        limit=limit,
        offset=offset,
    )
    items = await _shops_out(session, shops)
    return schemas.Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/shops/{shop_id}", response_model=schemas.Shop)
async def get_shop(shop: VisibleShop, session: SessionDep) -> schemas.Shop:
    """One shop; pending and rejected shops only for their owner and operators."""
    return (await _shops_out(session, [shop]))[0]


@router.patch("/shops/{shop_id}", response_model=schemas.Shop)
async def update_shop(
    body: schemas.ShopUpdate, shop: OwnedShop, session: SessionDep, user: CurrentUser
) -> schemas.Shop:
    """Change the shop's name, description, contact or region (owner or operator)."""
    shop = await service.update_shop(session, shop=shop, actor=user, data=body)
    return (await _shops_out(session, [shop]))[0]


@router.post("/shops/{shop_id}/approve", response_model=schemas.Shop)
async def approve_shop(operator: Operator, shop: OwnedShop, session: SessionDep) -> schemas.Shop:
    """Approve the shop so that it sells (operators only)."""
    shop = await service.approve_shop(session, shop=shop, operator=operator)
    return (await _shops_out(session, [shop]))[0]


@router.post("/shops/{shop_id}/reject", response_model=schemas.Shop)
async def reject_shop(
    body: schemas.ShopReject,
    operator: Operator,
    shop: OwnedShop,
    session: SessionDep,
    off_sale: OffSaleDep,
) -> schemas.Shop:
    """Reject the shop, or stop an approved one, with a reason (operators only): its open
    offers end, its live rooms close and its unpaid orders are cancelled."""
    shop = await service.reject_shop(
        session, shop=shop, operator=operator, reason=body.reason, off_sale=off_sale
    )
    return (await _shops_out(session, [shop]))[0]


# Following


@router.put("/shops/{shop_id}/follow", status_code=status.HTTP_204_NO_CONTENT)
async def follow_shop(shop: VisibleShop, session: SessionDep, user: CurrentUser) -> Response:
    """Follow an approved shop (following it twice is following it once)."""
    await service.follow(session, user=user, shop=shop)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/shops/{shop_id}/follow", status_code=status.HTTP_204_NO_CONTENT)
async def unfollow_shop(shop: VisibleShop, session: SessionDep, user: CurrentUser) -> Response:
    """Stop following the shop (not following it is fine)."""
    await service.unfollow(session, user=user, shop=shop)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/follows", response_model=schemas.Page[schemas.Shop])
async def my_follows(
    session: SessionDep, user: CurrentUser, limit: Limit = 20, offset: Offset = 0
) -> schemas.Page[schemas.Shop]:
    """The approved shops I follow, latest followed first."""
    shops, total = await service.followed_shops(
        session, user_id=user.id, limit=limit, offset=offset
    )
    items = await _shops_out(session, shops)
    return schemas.Page(items=items, total=total, limit=limit, offset=offset)


# Products


@router.post(
    "/shops/{shop_id}/products", status_code=status.HTTP_201_CREATED, response_model=schemas.Product
)
async def create_product(
    body: schemas.ProductCreate,
    shop: OwnedShop,
    session: SessionDep,
    user: CurrentUser,
    storage: Storage,
) -> schemas.Product:
    """List a product in the shop with at least one SKU (owner or operator)."""
    product = await service.create_product(session, shop=shop, actor=user, data=body)
    return (await _products_out(session, storage, [product]))[0]


@router.get("/shops/{shop_id}/products", response_model=schemas.Page[schemas.Product])
async def list_shop_products(
    request: Request,
    shop: VisibleShop,
    user: OptionalUser,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Response:
    """The shop's products, newest first; its owner and operators also see hidden ones."""
    body = await _product_page(
        request, shop_id=shop.id, public=not can_manage(user, shop), limit=limit, offset=offset
    )
    return Response(body, media_type="application/json")


@router.get(
    "/products", response_model=schemas.Page[schemas.Product], description=SEARCH_DESCRIPTION
)
async def search_products(
    request: Request,
    q: Annotated[str | None, Query(description="Words to find."), schemas.SearchWords] = None,
    region: RegionFilter = None,
    shop: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this shop.")] = None,
    category: Annotated[str | None, Query(), schemas.CategoryFilter] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Response:
    """Search products on sale by text, region of origin, shop and category."""
    body = await _product_page(
        request,
        q=q,
        region_code=region,
        shop_id=shop,
        category=category,
        limit=limit,
        offset=offset,
    )
    if body is None:
        raise InvalidInput(f"Unknown region code {region!r}.", field="region")
    return Response(body, media_type="application/json")


@router.get("/products/{product_id}", response_model=schemas.Product)
async def get_product(
    product: VisibleProduct, session: SessionDep, storage: Storage
) -> schemas.Product:
    """One product with its SKUs, shop, origin, provenance and images."""
    return (await _products_out(session, storage, [product]))[0]


@router.patch("/products/{product_id}", response_model=schemas.Product)
async def update_product(
    body: schemas.ProductUpdate,
    product: OwnedProduct,
    session: SessionDep,
    user: CurrentUser,
    storage: Storage,
    off_sale: OffSaleDep,
) -> schemas.Product:
    """Change the product's text, origin or status; ``hidden`` takes it off sale and ends
    its open offers."""
    product = await service.update_product(
        session, product=product, actor=user, data=body, off_sale=off_sale
    )
    return (await _products_out(session, storage, [product]))[0]


@router.post(
    "/products/{product_id}/skus", status_code=status.HTTP_201_CREATED, response_model=schemas.Sku
)
async def add_sku(
    body: schemas.SkuCreate, product: OwnedProduct, session: SessionDep, user: CurrentUser
) -> schemas.Sku:
    """Add a SKU to the product."""
    sku = await service.add_sku(session, product=product, actor=user, data=body)
    return schemas.Sku.model_validate(sku)


@router.patch("/skus/{sku_id}", response_model=schemas.Sku)
async def update_sku(
    body: schemas.SkuUpdate, sku: OwnedSku, session: SessionDep, user: CurrentUser
) -> schemas.Sku:
    """Change a SKU's name, price or stock on hand."""
    sku = await service.update_sku(session, sku=sku, actor=user, data=body)
    return schemas.Sku.model_validate(sku)


@router.post(
    "/products/{product_id}/provenance",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Provenance,
)
async def add_provenance(
    body: schemas.ProvenanceCreate,
    product: OwnedProduct,
    session: SessionDep,
    user: CurrentUser,
    storage: Storage,
) -> schemas.Provenance:
    """Record where and when a batch was harvested, made, processed or inspected."""
    entry = await service.add_provenance(session, product=product, actor=user, data=body)
    names = await service.place_names(session, places=[entry.place_region])
    context = {"place_names": names, "storage": storage}
    return schemas.Provenance.model_validate(entry, context=context)


@router.post(
    "/products/{product_id}/images",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Image,
)
async def upload_image(
    file: Annotated[UploadFile, File(description="A JPEG, PNG or WebP image.")],
    product: OwnedProduct,
    session: SessionDep,
    user: CurrentUser,
    storage: Storage,
) -> schemas.Image:
    """Upload a photo of the product; the format is read from the bytes, not the file name."""
    # BodyLimitMiddleware has already refused bodies over settings.max_upload_bytes.
    data = await file.read()
    image = await service.add_image(
        session, product=product, actor=user, storage=storage, data=data
    )
    return schemas.Image.model_validate(image, context={"storage": storage})


@router.delete("/products/{product_id}/images/{image_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_image(
    image_id: RowId, product: OwnedProduct, session: SessionDep, user: CurrentUser, storage: Storage
) -> None:
    """Delete one of the product's photos."""
    await service.delete_image(
        session, product=product, actor=user, storage=storage, image_id=image_id
    )
