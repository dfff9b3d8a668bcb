"""Rules of the catalog: shops and their review, products, SKUs, provenance, images, search."""

import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from functools import partial
from itertools import chain
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from originlive import rawsql
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

    ``public`` keeps to what buyers may see: active products of approved shops. For the JSON
    API, ``read_product_page`` answers the same from the reader, without ORM objects.
    """
    region_path = None
    if region_code is not None:
        region = await regions.get_or_404(session, code=region_code, field="region")
        region_path = region.path
    listing = search.Listing(tuple(search.terms(q)), region_path, shop_id, category, public)
    conn = await session.connection()
    ids, total = await conn.run_sync(
        lambda sync: search.page(sync, listing=listing, limit=limit, offset=offset)
    )
    if not ids:
        return [], total
    rows = await session.scalars(
        select(Product).where(Product.id.in_(ids)).options(*_PRODUCT_LOADS)
    )
    by_id = {p.id: p for p in rows}
    return [by_id[i] for i in ids if i in by_id], total


# Product pages for the JSON API, read on the app's reader (``batching.create_reader``): on
# SQLite a thread with a connection of its own, which answers a page in four or five plain
# statements (``rawsql``) and one hop from the event loop. Through the ORM a page took nine
# statements with a hop to aiosqlite's thread for each, and more time to build the objects
# and validate them into the response than SQLite took to find them.

# Regions never change once added (regions.service only inserts), so the reader keeps those
# it has shown, and how it shows them: a page then reads no region at all.
_REGIONS = "catalog.regions"
_PLACES = "catalog.places"


def read_product_page(
    conn: Connection,
    *,
    q: str | None = None,
    region_code: str | None = None,
    shop_id: int | None = None,
    category: str | None = None,
    public: bool = True,
    limit: int = 20,
    offset: int = 0,
    image_url: Callable[[str], str],
) -> tuple[list[dict[str, Any]], int] | None:
    """As ``search_products``, but the products as ``schemas.Product`` shows them (plain
    values, ready for JSON; images' URLs from ``image_url``); None if ``region_code`` names
    no region. For the reader's connection (``Runner.run``)."""
    region_path = None
    if region_code is not None:
        region = _regions(conn, [region_code]).get(region_code)
        if region is None:
            return None
        region_path = region[2]
    listing = search.Listing(tuple(search.terms(q)), region_path, shop_id, category, public)
    ids, total = search.page(conn, listing=listing, limit=limit, offset=offset)
    return read_products(conn, ids=ids, image_url=image_url), total


T = TypeVar("T")
# What the reader read, kept while reading again would find the same (see ``kept``). A page
# of products is about 20 KB of JSON.
KEPT_READS = 256
_KEPT = "catalog.kept"


@dataclass(slots=True)
class _Read:
    stamp: tuple[int, int]  # the connection's (data_version, total_changes) before reading
    generation: int  # the caller's count of the changes it was told of
    at: float  # time.monotonic() when read
    value: Any


def kept(
    conn: Connection,
    *,
    key: Hashable,
    read: Callable[[Connection], T],
    generation: int = 0,
    fresh_for: float = 0.0,
) -> T:
    """``read(conn)``, or what it returned for the same ``key`` on this connection (the
    ``KEPT_READS`` latest keys) if nothing has been committed to the database since it ran;
    or, if ``fresh_for`` is given, if it ran less than ``fresh_for`` seconds ago and
    ``generation`` is still what it was.

    Only on SQLite, on a connection outside a transaction (the reader's): its
    ``PRAGMA data_version`` changes with every commit of any other connection, of this
    process or another, and its ``total_changes`` with every write of its own. So with no
    ``fresh_for``, what is kept is exactly what reading again would find. But while orders
    or likes commit every moment that would be never: ``generation`` is the caller's count of
    the commits it is told of (the pages' cache counts every commit of the app's ORM
    sessions: a product, a price, a shop changed), so that what it is told of is seen at
    once, and what it is not (stock taken by the order path's plain SQL, another process's
    commits) within ``fresh_for`` seconds, as on the shared pages. Elsewhere it reads every
    time.
    """
    dbapi: Any = conn.connection.dbapi_connection
    if not isinstance(dbapi, sqlite3.Connection) or dbapi.in_transaction:
        return read(conn)
    # Taken before reading: a commit while ``read`` runs changes it for the next call.
    stamp = (dbapi.execute("PRAGMA data_version").fetchone()[0], dbapi.total_changes)
    now = time.monotonic()
    reads: OrderedDict[Hashable, _Read] = conn.connection.info.setdefault(_KEPT, OrderedDict())
    was = reads.get(key)
    if (
        was is not None
        and was.generation == generation
        and (was.stamp == stamp or now - was.at < fresh_for)
    ):
        reads.move_to_end(key)
        return was.value  # type: ignore[no-any-return]
    value = read(conn)
    reads[key] = _Read(stamp, generation, now, value)
    reads.move_to_end(key)
    while len(reads) > KEPT_READS:
        reads.popitem(last=False)
    return value


def _in(conn: Connection, column: str, name: str) -> str:
    """``column`` is one of the list bound as ``name`` (see ``_listed``)."""
    if conn.dialect.name == "sqlite":
        return f"{column} IN (SELECT value FROM json_each(:{name}))"  # noqa: S608
    return f"{column} = ANY(:{name})"


def _listed(conn: Connection, values: Collection[Any]) -> Any:
    return json.dumps(list(values)) if conn.dialect.name == "sqlite" else list(values)


def _regions(conn: Connection, codes: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """The connection's regions by code, ``(name, level, path)``: those with these codes and
    every region above them, read once per connection."""
    known: dict[str, tuple[str, str, str]] = conn.connection.info.setdefault(_REGIONS, {})
    missing = {c for c in codes if c not in known}
    while missing:  # the regions, then those of their paths not yet known
        rows = rawsql.execute(
            conn,
            f"SELECT code, name, level, path FROM regions WHERE {_in(conn, 'code', 'codes')}",  # noqa: S608
            codes=_listed(conn, sorted(missing)),
        ).fetchall()
        found = {code: (name, level, path) for code, name, level, path in rows}
        known |= found
        missing = {c for _, _, path in found.values() for c in path.split("/") if c} - known.keys()
    return known


def _places(conn: Connection, codes: Collection[str]) -> dict[str, dict[str, Any]]:
    """The connection's regions by code as ``schemas.Place`` shows them, these among them.
    The same dictionaries serve every page: they are read, never changed."""
    places: dict[str, dict[str, Any]] = conn.connection.info.setdefault(_PLACES, {})
    if missing := [c for c in codes if c not in places]:
        regions = _regions(conn, missing)
        for code in missing:
            name, level, path = regions[code]
            trail = [regions[c][0] for c in path.split("/") if c in regions]
            places[code] = {"code": code, "name": name, "level": level, "path_names": trail,
                            "full_name": " ".join(trail)}  # fmt: skip
    return places


def read_products(
    conn: Connection, *, ids: Sequence[int], image_url: Callable[[str], str]
) -> list[dict[str, Any]]:
    """The products with these ids, in this order, as ``schemas.Product`` shows them (ids
    of products that are gone are left out). Their places are shared: read them only."""
    if not ids:
        return []
    listed = _listed(conn, ids)
    products = rawsql.execute(
        conn,
        "SELECT products.id, products.shop_id, shops.name, shops.status, shops.region_code,"  # noqa: S608
        " products.title, products.description, products.category, products.status,"
        " products.origin_region_code, products.created_at, products.updated_at"
        " FROM products JOIN shops ON shops.id = products.shop_id"
        f" WHERE {_in(conn, 'products.id', 'ids')}",
        ids=listed,
    ).fetchall()
    skus = rawsql.execute(
        conn,
        "SELECT id, product_id, name, price_cents, currency, stock FROM skus"  # noqa: S608
        f" WHERE {_in(conn, 'product_id', 'ids')} ORDER BY id",
        ids=listed,
    ).fetchall()
    images = rawsql.execute(
        conn,
        'SELECT id, product_id, "key", content_type, size_bytes FROM product_images'  # noqa: S608
        f" WHERE {_in(conn, 'product_id', 'ids')} ORDER BY id",
        ids=listed,
    ).fetchall()
    provenance = rawsql.execute(
        conn,
        "SELECT e.id, e.product_id, e.batch, e.kind, e.occurred_on, e.place, e.note,"  # noqa: S608
        ' e.place_region_code, i.id, i."key", i.content_type, i.size_bytes'
        " FROM provenance_entries AS e LEFT JOIN product_images AS i ON i.id = e.photo_id"
        f" WHERE {_in(conn, 'e.product_id', 'ids')} ORDER BY e.occurred_on, e.id",
        ids=listed,
    ).fetchall()
    codes = {row[4] for row in products} | {row[9] for row in products}
    places = _places(conn, codes | {row[7] for row in provenance if row[7] is not None})

    def image(image_id: int, key: str, content_type: str, size_bytes: int) -> dict[str, Any]:
        return {"id": image_id, "url": image_url(key), "content_type": content_type,
                "size_bytes": size_bytes}  # fmt: skip

    out: dict[int, dict[str, Any]] = {}
    for (product_id, shop_id, shop_name, shop_status, shop_region, title, description, category,
         status, origin, created_at, updated_at) in products:  # fmt: skip
        shop = {"id": shop_id, "name": shop_name, "status": shop_status,
                "region": places[shop_region]}  # fmt: skip
        out[product_id] = {
            "id": product_id,
            "shop_id": shop_id,
            "shop": shop,
            "title": title,
            "description": description,
            "category": category,
            "status": status,
            "origin": places[origin],
            "skus": [],
            "provenance": [],
            "images": [],
            "created_at": rawsql.from_db_time(created_at),
            "updated_at": rawsql.from_db_time(updated_at),
        }
    # Each statement sees what was committed when it ran: what belongs to a product that
    # was gone by the first is left out.
    missing: dict[str, list[Any]] = {"skus": [], "images": [], "provenance": []}
    for sku_id, product_id, name, price_cents, currency, stock in skus:
        sku = {"id": sku_id, "product_id": product_id, "name": name,
               "price_cents": price_cents, "currency": currency, "stock": stock}  # fmt: skip
        out.get(product_id, missing)["skus"].append(sku)
    for image_id, product_id, *rest in images:
        out.get(product_id, missing)["images"].append(image(image_id, *rest))
    for entry_id, product_id, batch, kind, occurred_on, where, note, code, *photo in provenance:
        out.get(product_id, missing)["provenance"].append(
            {
                "id": entry_id,
                "batch": batch,
                "kind": kind,
                "date": _date(occurred_on),
                "place": where,
                "place_region": places[code] if code is not None else None,
                "note": note,
                "photo": image(*photo) if photo[0] is not None else None,
            }
        )
    return [out[i] for i in ids if i in out]


def _date(value: date | str) -> date:
    """A date as read by ``rawsql``: SQLite gives its ISO text."""
    return date.fromisoformat(value) if isinstance(value, str) else value
