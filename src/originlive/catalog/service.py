"""Rules of the catalog: shops and their review, products, SKUs, provenance, images, search."""

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from itertools import chain
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, User
from originlive.catalog import schemas, search
from originlive.catalog.models import (
    Product,
    ProductImage,
    ProductStatus,
    ProvenanceEntry,
    Shop,
    ShopFollow,
    ShopStatus,
    Sku,
)
from originlive.catalog.storage import ImageStorage, clean_image
from originlive.db import after_commit, changed
from originlive.errors import Conflict, InvalidInput, NotFound
from originlive.regions import service as regions
from originlive.regions.models import Region
from originlive.text import shop_name_key

MAX_IMAGES = 20


class OffSale(Protocol):
    """What the features above the catalog do when a shop or product stops selling: end its
    offers, close its rooms (``live.control.StopSelling``, wired in ``app.py``; the catalog
    may not import them). Called in the transaction that stops it."""

    async def shop_stopped(self, session: AsyncSession, *, shop_id: int) -> None: ...

    async def product_hidden(self, session: AsyncSession, *, product_id: int) -> None: ...


# Many-to-one in the same query (a join), collections one query each: every query costs a
# round trip to the database thread, which is most of a product read's time.
_PRODUCT_LOADS = (
    joinedload(Product.shop, innerjoin=True).joinedload(Shop.region, innerjoin=True),
    joinedload(Product.origin, innerjoin=True),
    selectinload(Product.skus),
    selectinload(Product.images),
    selectinload(Product.provenance).options(
        joinedload(ProvenanceEntry.place_region), joinedload(ProvenanceEntry.photo)
    ),
)


async def place_names(
    session: AsyncSession, *, places: Iterable[Region | None]
) -> dict[str, list[str]]:
    """For each region's code, the names from its province down to it, in one query."""
    paths = {r.code: [c for c in r.path.split("/") if c] for r in places if r is not None}
    codes = set(chain.from_iterable(paths.values()))
    rows = await session.execute(select(Region.code, Region.name).where(Region.code.in_(codes)))
    names = {code: name for code, name in rows}
    return {code: [names[c] for c in path if c in names] for code, path in paths.items()}


async def _audit(
    session: AsyncSession, *, actor: User, action: str, target: Shop | Product | Sku, **detail: Any
) -> None:
    await accounts.record_operator_act(
        session, actor=actor, action=action, target_type=type(target).__name__.lower(),
        target_id=target.id, detail=detail,
    )  # fmt: skip


async def _reindex(session: AsyncSession, *, products: Sequence[Product]) -> None:
    """Rewrite the text the search index reads; needs ``shop`` and ``origin`` loaded."""
    names = await place_names(session, places=(p.origin for p in products))
    for p in products:
        origin = " ".join(names[p.origin.code])
        p.search_text = "\n".join((p.title, p.category, p.description, p.shop.name, origin))


# Shops


class ShopNameTaken(Conflict):
    """Another shop's name looks like this one (the same ``text.shop_name_key``)."""

    def __init__(self) -> None:
        message = "Another shop already has a name that looks like this one."
        super().__init__(message, errors=[{"field": "name", "message": message}])


async def _check_name_free(session: AsyncSession, *, name: str, shop_id: int = 0) -> None:
    """ShopNameTaken if a shop other than ``shop_id`` has a name that looks like ``name``."""
    taken = select(Shop.id).where(Shop.name_key == shop_name_key(name), Shop.id != shop_id)
    if await session.scalar(taken.limit(1)) is not None:
        raise ShopNameTaken


@asynccontextmanager
async def _naming(session: AsyncSession, shop: Shop | None = None) -> AsyncIterator[None]:
    """Name a shop in the block, flushed in a savepoint: the unique index settles a race
    the check before it missed, and takes back only the block's changes."""
    try:
        async with session.begin_nested():  # which flushes what was pending before it
            yield
            await session.flush()
    except IntegrityError as exc:
        if "name_key" not in str(exc.orig):
            raise
        if shop is not None:  # the rollback expired it; read it back for whoever shows it
            await session.refresh(shop, ["region"])
        raise ShopNameTaken from exc


async def get_shop(session: AsyncSession, *, shop_id: int) -> Shop | None:
    """The shop with its region, or None."""
    return await session.scalar(
        select(Shop).where(Shop.id == shop_id).options(selectinload(Shop.region))
    )


async def list_shops(
    session: AsyncSession,
    *,
    statuses: Collection[ShopStatus],
    owner_id: int | None = None,
    region_code: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[Sequence[Shop], int]:
    """A page of shops in the given states, newest first, and how many there are in all."""
    query = select(Shop).where(Shop.status.in_(statuses))
    if owner_id is not None:
        query = query.where(Shop.owner_id == owner_id)
    if region_code is not None:
        region = await regions.get_or_404(session, code=region_code, field="region")
        query = query.where(regions.within(region, Shop.region_code.expression))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = query.options(selectinload(Shop.region)).order_by(Shop.id.desc())
    shops = (await session.scalars(page.limit(limit).offset(offset))).all()
    return shops, total or 0


async def open_shop(
    session: AsyncSession, *, owner: User, data: schemas.ShopCreate, approve: bool
) -> Shop:
    """Open a shop at its place of origin; its owner becomes a merchant. ShopNameTaken if
    another shop's name looks like this one."""
    region = await regions.get_or_404(session, code=data.region_code, field="region_code")
    await _check_name_free(session, name=data.name)
    shop = Shop(
        owner_id=owner.id,
        region=region,
        **data.model_dump(exclude={"region_code"}),
        status=ShopStatus.APPROVED if approve else ShopStatus.PENDING,
    )
    async with _naming(session):
        session.add(shop)
    await accounts.grant_role(session, user=owner, role=Role.MERCHANT)
    if approve:
        await accounts.record_audit(
            session,
            actor=None,
            action="shop.approve",
            target_type="shop",
            target_id=shop.id,
            detail={"automatic": True},
        )
    return shop


async def update_shop(
    session: AsyncSession, *, shop: Shop, actor: User, data: schemas.ShopUpdate
) -> Shop:
    """Change a shop's name, description, contact or region. ShopNameTaken if the new name
    looks like another shop's."""
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name") == shop.name:  # kept: a look-alike from before 0008 keeps its own
        del changes["name"]
    if "name" in changes:
        await _check_name_free(session, name=changes["name"], shop_id=shop.id)
    if "region_code" in changes:
        shop.region = await regions.get_or_404(
            session, code=changes.pop("region_code"), field="region_code"
        )
    async with _naming(session, shop):
        for name, value in changes.items():
            setattr(shop, name, value)
    if "name" in changes:  # the shop's name is part of every product's search text
        products = await session.scalars(
            select(Product)
            .where(Product.shop_id == shop.id)
            .options(selectinload(Product.shop), selectinload(Product.origin))
        )
        await _reindex(session, products=products.all())
    await session.flush()
    await _audit(session, actor=actor, action="shop.update", target=shop, **changes)
    return shop


async def approve_shop(session: AsyncSession, *, shop: Shop, operator: User) -> Shop:
    """Let the shop sell: its active products appear in public reads and search."""
    shop.status, shop.reject_reason = ShopStatus.APPROVED, None
    await session.flush()
    await _audit(session, actor=operator, action="shop.approve", target=shop)
    return shop


async def reject_shop(
    session: AsyncSession, *, shop: Shop, operator: User, reason: str, off_sale: OffSale
) -> Shop:
    """Refuse (or stop) a shop, telling its owner why: its products leave public view, and
    nothing of it sells any more (``OffSale.shop_stopped``)."""
    shop.status, shop.reject_reason = ShopStatus.REJECTED, reason
    await session.flush()
    await off_sale.shop_stopped(session, shop_id=shop.id)
    await _audit(session, actor=operator, action="shop.reject", target=shop, reason=reason)
    return shop


# Following


async def follow(session: AsyncSession, *, user: User, shop: Shop) -> None:
    """Follow an approved shop; following it again changes nothing."""
    if shop.status != ShopStatus.APPROVED:
        raise NotFound(f"No shop {shop.id}.")  # as for anyone who cannot see it
    # One statement, so that two taps at once make one row rather than a conflict error.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(
        dialect.insert(ShopFollow)
        .values(user_id=user.id, shop_id=shop.id)
        .on_conflict_do_nothing(index_elements=["user_id", "shop_id"])
    )
    changed(session, ShopFollow(user_id=user.id, shop_id=shop.id))  # the viewer's home page


async def unfollow(session: AsyncSession, *, user: User, shop: Shop) -> None:
    """Stop following a shop; not following it is fine."""
    await session.execute(
        delete(ShopFollow).where(ShopFollow.user_id == user.id, ShopFollow.shop_id == shop.id)
    )
    changed(session, ShopFollow(user_id=user.id, shop_id=shop.id))


async def follows(session: AsyncSession, *, user_id: int, shop_id: int) -> bool:
    """Whether the user follows the shop."""
    row = await session.scalar(
        select(ShopFollow.shop_id).where(
            ShopFollow.user_id == user_id, ShopFollow.shop_id == shop_id
        )
    )
    return row is not None


async def followed_among(
    session: AsyncSession, *, user_id: int, shop_ids: Collection[int]
) -> set[int]:
    """Which of these shops the user follows, in one query."""
    if not shop_ids:
        return set()
    rows = await session.scalars(
        select(ShopFollow.shop_id).where(
            ShopFollow.user_id == user_id, ShopFollow.shop_id.in_(set(shop_ids))
        )
    )
    return set(rows)


async def follower_counts(session: AsyncSession, *, shop_ids: Collection[int]) -> dict[int, int]:
    """How many buyers follow each of these shops (absent: none)."""
    if not shop_ids:
        return {}
    rows = await session.execute(
        select(ShopFollow.shop_id, func.count())
        .where(ShopFollow.shop_id.in_(set(shop_ids)))
        .group_by(ShopFollow.shop_id)
    )
    return {shop_id: n for shop_id, n in rows}


async def follower_count(session: AsyncSession, *, shop_id: int) -> int:
    """How many buyers follow the shop."""
    return (await follower_counts(session, shop_ids=[shop_id])).get(shop_id, 0)


async def followed_shops(
    session: AsyncSession, *, user_id: int, limit: int = 20, offset: int = 0
) -> tuple[Sequence[Shop], int]:
    """The approved shops the user follows, latest followed first, and how many in all."""
    query = (
        select(Shop)
        .join(ShopFollow, ShopFollow.shop_id == Shop.id)
        .where(ShopFollow.user_id == user_id, Shop.status == ShopStatus.APPROVED)
    )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = query.options(selectinload(Shop.region)).order_by(
        ShopFollow.created_at.desc(), Shop.id.desc()
    )
    shops = (await session.scalars(page.limit(limit).offset(offset))).all()
    return shops, total or 0


# Products


async def get_product(session: AsyncSession, *, product_id: int) -> Product | None:
    """The product with its shop, origin, SKUs, images and provenance, or None."""
    return await session.scalar(
        select(Product).where(Product.id == product_id).options(*_PRODUCT_LOADS)
    )


async def _provenance_entry(
    session: AsyncSession, *, product: Product, data: schemas.ProvenanceCreate, field: str
) -> ProvenanceEntry:
    place_region = None
    if data.place_region_code is not None:
        place_region = await regions.get_or_404(
            session, code=data.place_region_code, field=f"{field}place_region_code"
        )
    photo = None
    if data.photo_id is not None:
        photo = next((i for i in product.images if i.id == data.photo_id), None)
        if photo is None:
            raise InvalidInput(
                "The photo must be an image uploaded to this product.", field=f"{field}photo_id"
            )
    return ProvenanceEntry(
        batch=data.batch,
        kind=data.kind,
        occurred_on=data.date,
        place=data.place,
        place_region=place_region,
        note=data.note,
        photo=photo,
    )


async def create_product(
    session: AsyncSession, *, shop: Shop, actor: User, data: schemas.ProductCreate
) -> Product:
    """List a product with its SKUs (and, optionally, its first provenance entries)."""
    product = Product(
        shop=shop,
        title=data.title,
        description=data.description,
        category=data.category,
        origin=await regions.get_or_404(
            session, code=data.origin_region_code, field="origin_region_code"
        ),
        skus=[Sku(**sku.model_dump()) for sku in data.skus],
        images=[],
        provenance=[],
    )
    for i, entry in enumerate(data.provenance):
        product.provenance.append(
            await _provenance_entry(session, product=product, data=entry, field=f"provenance.{i}.")
        )
    await _reindex(session, products=[product])
    session.add(product)
    await session.flush()
    await _audit(session, actor=actor, action="product.create", target=product, title=data.title)
    return product


async def update_product(
    session: AsyncSession,
    *,
    product: Product,
    actor: User,
    data: schemas.ProductUpdate,
    off_sale: OffSale,
) -> Product:
    """Change a product's text, origin or status (hidden takes it off sale, and its offers
    end: ``OffSale.product_hidden``)."""
    changes = data.model_dump(exclude_unset=True)
    hides = product.status == ProductStatus.ACTIVE and changes.get("status") == ProductStatus.HIDDEN
    if "origin_region_code" in changes:
        product.origin = await regions.get_or_404(
            session, code=changes.pop("origin_region_code"), field="origin_region_code"
        )
    for name, value in changes.items():
        setattr(product, name, value)
    await _reindex(session, products=[product])
    await session.flush()
    if hides:
        await off_sale.product_hidden(session, product_id=product.id)
    await _audit(session, actor=actor, action="product.update", target=product, **changes)
    return product


async def add_sku(
    session: AsyncSession, *, product: Product, actor: User, data: schemas.SkuCreate
) -> Sku:
    """Add a variant to a product."""
    if len(product.skus) >= schemas.MAX_SKUS:
        raise Conflict(f"A product has at most {schemas.MAX_SKUS} SKUs.")
    sku = Sku(**data.model_dump())
    product.skus.append(sku)
    await session.flush()
    await _audit(session, actor=actor, action="sku.create", target=sku, **data.model_dump())
    return sku


async def get_sku(session: AsyncSession, *, sku_id: int) -> Sku | None:
    """The SKU with its product and shop, or None."""
    return await session.scalar(
        select(Sku)
        .where(Sku.id == sku_id)
        .options(selectinload(Sku.product).selectinload(Product.shop))
    )


async def update_sku(
    session: AsyncSession, *, sku: Sku, actor: User, data: schemas.SkuUpdate
) -> Sku:
    """Change a SKU's name, price or stock on hand."""
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(sku, name, value)
    await session.flush()
    await _audit(session, actor=actor, action="sku.update", target=sku, **changes)
    return sku


async def add_provenance(
    session: AsyncSession, *, product: Product, actor: User, data: schemas.ProvenanceCreate
) -> ProvenanceEntry:
    """Record a step of a batch's history; its photo must be one of the product's images."""
    entry = await _provenance_entry(session, product=product, data=data, field="")
    product.provenance.append(entry)
    await session.flush()
    await _audit(
        session, actor=actor, action="provenance.create", target=product, entry_id=entry.id
    )
    return entry


async def add_image(
    session: AsyncSession, *, product: Product, actor: User, storage: ImageStorage, data: bytes
) -> ProductImage:
    """Store an uploaded photo, decoded and re-encoded (see ``storage.clean_image``)."""
    if len(product.images) >= MAX_IMAGES:  # before the decoding, which costs far more
        raise Conflict(f"A product has at most {MAX_IMAGES} images.")
    clean = await clean_image(data)
    key = await storage.save(clean.data, content_type=clean.content_type)
    image = ProductImage(key=key, content_type=clean.content_type, size_bytes=len(clean.data))
    product.images.append(image)
    try:
        await session.flush()
        await _audit(session, actor=actor, action="image.create", target=product, image_id=image.id)
    except BaseException:  # no row, no file
        await storage.delete(key)
        raise
    return image


async def delete_image(
    session: AsyncSession, *, product: Product, actor: User, storage: ImageStorage, image_id: int
) -> None:
    """Remove a photo; provenance entries showing it lose their photo."""
    image = next((i for i in product.images if i.id == image_id), None)
    if image is None:
        raise NotFound(f"Product {product.id} has no image {image_id}.")
    product.images.remove(image)
    await session.flush()
    await _audit(session, actor=actor, action="image.delete", target=product, image_id=image_id)
    # The file goes only once the row is gone for good; a rollback keeps both.
    after_commit(session, partial(storage.delete, image.key))


async def search_products(
    session: AsyncSession,
    *,
    q: str | None = None,
    region_code: str | None = None,
    shop_id: int | None = None,
    category: str | None = None,
    public: bool = True,
    limit: int = 20,
    offset: int = 0,
) -> tuple[Sequence[Product], int]:
    """A page of products, best text matches then newest first, and how many match in all.

    ``public`` keeps to what buyers may see: active products of approved shops.
    """
    query = select(Product.id)
    if public:
        query = query.join(Product.shop).where(
            Shop.status == ShopStatus.APPROVED, Product.status == ProductStatus.ACTIVE
        )
    if shop_id is not None:
        query = query.where(Product.shop_id == shop_id)
    if category is not None:
        query = query.where(Product.category == category)
    if region_code is not None:
        region = await regions.get_or_404(session, code=region_code, field="region")
        query = query.where(regions.within(region, Product.origin_region_code.expression))
    order = [Product.id.desc()]
    if q and (match := search.text_match(session, q)):
        condition, rank = match
        query = query.where(condition)
        order.insert(0, rank.desc())
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    ids = list(await session.scalars(query.order_by(*order).limit(limit).offset(offset)))
    rows = await session.scalars(
        select(Product).where(Product.id.in_(ids)).options(*_PRODUCT_LOADS)
    )
    by_id = {p.id: p for p in rows}
    return [by_id[i] for i in ids], total or 0
