"""HTML routes of the catalog: product and shop pages, search, and the home page's listing."""

from dataclasses import dataclass
from itertools import chain
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import User
from originlive.catalog import schemas, service
from originlive.catalog.deps import Storage, VisibleProduct, VisibleShop, can_manage, on_sale
from originlive.catalog.models import (
    Product,
    ProductImage,
    ProductStatus,
    ProvenanceEntry,
    Shop,
    ShopStatus,
    Sku,
)
from originlive.db import SessionDep
from originlive.regions import service as regions
from originlive.regions.models import Region
from originlive.routing import Router
from originlive.web.deps import Viewer, get_viewer, sign_in_first
from originlive.web.pagecache import Shared, watch
from originlive.web.templating import render

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

PAGE_SIZE = 24
# Deep pages of a public listing cost the database and help nobody; search narrows instead.
MAX_PAGE = 200

SearchText = Annotated[str, Query(), schemas.SearchWords]
RegionParam = Annotated[str, Query(pattern=r"^([0-9]{6,12})?$")]
PageParam = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@dataclass(frozen=True)
class ProvinceCount:
    """A province and how many products on sale come from it."""

    region: Region
    products: int


async def provinces_with_products(session: AsyncSession) -> list[ProvinceCount]:
    """Provinces that products on sale come from, in code order, with their counts."""
    # Not in catalog.service yet; it belongs there once another caller needs it.
    rows = await session.execute(
        select(Region.path, func.count(Product.id))
        .select_from(Product)
        .join(Shop, Shop.id == Product.shop_id)
        .join(Region, Region.code == Product.origin_region_code)
        .where(Shop.status == ShopStatus.APPROVED, Product.status == ProductStatus.ACTIVE)
        .group_by(Region.path)
    )
    counts: dict[str, int] = {}
    for path, n in rows:  # a path starts with its province's code: "610000/610400/610431/"
        province = path.split("/", 1)[0]
        counts[province] = counts.get(province, 0) + n
    provinces = await session.scalars(
        select(Region).where(Region.code.in_(counts)).order_by(Region.code)
    )
    return [ProvinceCount(p, counts[p.code]) for p in provinces]


async def listing(session: AsyncSession, *, q: str, region_code: str, page: int) -> dict[str, Any]:
    """What a product listing page shows: one page of products on sale and the region filter."""
    products, total = await service.search_products(
        session,
        q=q or None,
        region_code=region_code or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    region = await regions.get(session, code=region_code) if region_code else None
    return {
        "q": q,
        "region": region,
        "page": page,
        "products": products,
        "total": total,
        "has_next": page * PAGE_SIZE < total and page < MAX_PAGE,
        "origin_names": await service.place_names(session, places=(p.origin for p in products)),
        "provinces": await provinces_with_products(session),
    }


@router.get("/search", response_class=HTMLResponse)
async def search(
    request: Request,
    session: SessionDep,
    storage: Storage,
    q: SearchText = "",
    region: RegionParam = "",
    page: PageParam = 1,
) -> HTMLResponse:
    """Products on sale matching the words, from the region and everything below it."""
    context = await listing(session, q=q.strip(), region_code=region, page=page)
    return render(request, "catalog/search.html", context | {"image_url": storage.url})


@router.get("/products/{product_id}", response_class=HTMLResponse)
async def product_page(
    request: Request, product: VisibleProduct, session: SessionDep, storage: Storage, viewer: Viewer
) -> HTMLResponse:
    """A product with its SKUs, shop, origin, provenance and photos."""
    places = chain(
        [product.shop.region], (e.place_region for e in product.provenance if e.place_region)
    )
    context = {
        "product": product,
        "origin_trail": await regions.ancestors(session, region=product.origin),
        "place_names": await service.place_names(session, places=places),
        "prices": sorted({s.price_cents for s in product.skus}),
        "on_sale": on_sale(product),
        "manages": can_manage(viewer, product.shop),
        "image_url": storage.url,
    }
    # The same for every viewer who does not manage the shop (web.pagecache).
    shop = product.shop
    shared = Shared(
        tags=(f"product:{product.id}", f"shop:{shop.id}"),
        only_if=lambda viewer: not can_manage(viewer, shop),
    )
    personal = bool(context["manages"])
    return render(request, "catalog/product.html", context, shared=shared, personal=personal)


@router.get("/shops/{shop_id}", response_class=HTMLResponse)
async def shop_page(
    request: Request,
    shop: VisibleShop,
    session: SessionDep,
    storage: Storage,
    viewer: Viewer,
    page: PageParam = 1,
) -> HTMLResponse:
    """A shop, where it is, and its products (hidden ones too for its owner and operators)."""
    manages = can_manage(viewer, shop)
    products, total = await service.search_products(
        session, shop_id=shop.id, public=not manages, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    context = {
        "shop": shop,
        "region_trail": await regions.ancestors(session, region=shop.region),
        "products": products,
        "total": total,
        "page": page,
        "has_next": page * PAGE_SIZE < total and page < MAX_PAGE,
        "origin_names": await service.place_names(session, places=(p.origin for p in products)),
        "manages": manages,
        "image_url": storage.url,
    }
    return render(request, "catalog/shop.html", context | await _follow_box(session, shop, viewer))


async def _follow_box(session: AsyncSession, shop: Shop, viewer: User | None) -> dict[str, Any]:
    """What the shop's follow button shows: its followers, and whether the viewer is one."""
    return {
        "followers": await service.follower_count(session, shop_id=shop.id),
        "following": viewer is not None
        and await service.follows(session, user_id=viewer.id, shop_id=shop.id),
        # Its owner does not follow it; others follow only shops that sell.
        "can_follow": shop.status == ShopStatus.APPROVED
        and (viewer is None or viewer.id != shop.owner_id),
    }


async def _after_follow(
    request: Request, session: AsyncSession, shop: Shop, viewer: User
) -> Response:
    """htmx swaps the button in place; a plain form goes back to the shop page."""
    if request.headers.get("HX-Request") == "true":
        context = {"shop": shop} | await _follow_box(session, shop, viewer)
        return render(request, "catalog/_follow.html", context)
    return RedirectResponse(f"/shops/{shop.id}", status_code=303)


@router.post("/shops/{shop_id}/follow")
async def follow(
    request: Request, shop: VisibleShop, session: SessionDep, viewer: Viewer
) -> Response:
    """Follow the shop, then back to it; anonymous visitors sign in first."""
    if viewer is None:
        return sign_in_first(f"/shops/{shop.id}")
    await service.follow(session, user=viewer, shop=shop)
    return await _after_follow(request, session, shop, viewer)


@router.post("/shops/{shop_id}/unfollow")
async def unfollow(
    request: Request, shop: VisibleShop, session: SessionDep, viewer: Viewer
) -> Response:
    """Stop following the shop, then back to it."""
    if viewer is None:
        return sign_in_first(f"/shops/{shop.id}")
    await service.unfollow(session, user=viewer, shop=shop)
    return await _after_follow(request, session, shop, viewer)


# What a product's page, its shop's and the listings (the home page) show of each row.
watch(Shop, lambda shop: (f"shop:{shop.id}", "listing"))
watch(Product, lambda product: (f"product:{product.id}", f"shop:{product.shop_id}", "listing"))
watch(Sku, lambda sku: (f"product:{sku.product_id}", "listing"))
watch(ProductImage, lambda image: (f"product:{image.product_id}", "listing"))
watch(ProvenanceEntry, lambda entry: (f"product:{entry.product_id}",))
