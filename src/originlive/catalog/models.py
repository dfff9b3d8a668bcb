"""Tables of the catalog feature."""

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from originlive.db import Base, UTCDateTime, text_enum, utcnow
from originlive.regions.models import Region
from originlive.text import shop_name_key


class ShopStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class ProductStatus(enum.StrEnum):
    ACTIVE = "active"
    HIDDEN = "hidden"


def product_on_sale(status: ProductStatus, shop_status: ShopStatus) -> bool:
    """Whether buyers may see and buy a product: active, of an approved shop. The order path
    adds an offer's own state to this (``orders.stock.on_sale``, and its SQL forms)."""
    return status == ProductStatus.ACTIVE and shop_status == ShopStatus.APPROVED


class ProvenanceKind(enum.StrEnum):
    HARVEST = "harvest"
    PRODUCTION = "production"
    PROCESSING = "processing"
    INSPECTION = "inspection"


# Made by hand in migration 0002 for one backend each (SQLite's FTS5 table with its shadow
# tables, PostgreSQL's trigram index); migrations/env.py keeps autogenerate off them.
HAND_MADE = {"products_fts", "ix_products_search_text_trgm"}
Base.metadata.info.setdefault("hand_made", set()).update(HAND_MADE)


class Shop(Base):
    """A merchant's storefront, anchored at its place of origin; only approved shops sell."""

    __tablename__ = "shops"
    __table_args__ = (
        Index("ix_shops_owner_id", "owner_id"),
        Index("ix_shops_status_region_code", "status", "region_code"),
        # No two shops whose names look alike (text.shop_name_key); races end here.
        Index("ix_shops_name_key", "name_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(80))
    # Set with the name (``_keyed``). The server default only lets migration 0008 add the
    # column NOT NULL on SQLite without copying the table.
    name_key: Mapped[str] = mapped_column(Text, server_default="")
    description: Mapped[str] = mapped_column(String(2000), default="")
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    contact_name: Mapped[str | None] = mapped_column(String(40))
    contact_phone: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[ShopStatus] = mapped_column(
        text_enum(ShopStatus, length=16), default=ShopStatus.PENDING
    )
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    region: Mapped[Region] = relationship(lazy="raise")

    @validates("name")
    def _keyed(self, _attribute: str, name: str) -> str:
        self.name_key = shop_name_key(name)
        return name


class Product(Base):
    """Something a shop sells, in one or more SKUs, with where it comes from."""

    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_shop_id", "shop_id"),
        Index("ix_products_origin_region_code", "origin_region_code"),
        Index("ix_products_category", "category"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(5000), default="")
    category: Mapped[str] = mapped_column(String(40))
    origin_region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    status: Mapped[ProductStatus] = mapped_column(
        text_enum(ProductStatus, length=16), default=ProductStatus.ACTIVE
    )
    # Title, category, description, shop name and origin names in one text: the service
    # rewrites it on every change, the search index (FTS5 or trigram) reads only this.
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    shop: Mapped[Shop] = relationship(lazy="raise")
    origin: Mapped[Region] = relationship(lazy="raise")
    skus: Mapped[list["Sku"]] = relationship(
        back_populates="product", lazy="raise", order_by="Sku.id", passive_deletes=True
    )
    images: Mapped[list["ProductImage"]] = relationship(
        lazy="raise", order_by="ProductImage.id", cascade="all, delete-orphan", passive_deletes=True
    )
    provenance: Mapped[list["ProvenanceEntry"]] = relationship(
        lazy="raise",
        order_by=lambda: (ProvenanceEntry.occurred_on, ProvenanceEntry.id),
        passive_deletes=True,
    )


class Sku(Base):
    """One sellable variant with its price and the units on hand."""

    __tablename__ = "skus"
    __table_args__ = (
        # The last line of defence against overselling: no update may take stock below zero.
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        Index("ix_skus_product_id", "product_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(60))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    stock: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    product: Mapped[Product] = relationship(back_populates="skus", lazy="raise")


class ProductImage(Base):
    """An uploaded photo of a product; the file lives in the image storage under ``key``."""

    __tablename__ = "product_images"
    __table_args__ = (Index("ix_product_images_product_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128), unique=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProvenanceEntry(Base):
    """A step in a batch's history: where and when it was harvested, made, processed or checked."""

    __tablename__ = "provenance_entries"
    __table_args__ = (Index("ix_provenance_entries_product_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    batch: Mapped[str] = mapped_column(String(40))
    kind: Mapped[ProvenanceKind] = mapped_column(text_enum(ProvenanceKind, length=16))
    occurred_on: Mapped[date]
    place: Mapped[str] = mapped_column(String(120))
    place_region_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    note: Mapped[str | None] = mapped_column(String(1000))
    photo_id: Mapped[int | None] = mapped_column(
        ForeignKey("product_images.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    place_region: Mapped[Region | None] = relationship(lazy="raise")
    photo: Mapped[ProductImage | None] = relationship(lazy="raise")


class ShopFollow(Base):
    """A buyer following a shop: its sessions come first on their home page."""

    __tablename__ = "shop_follows"
    # The key (user_id, shop_id) finds a user's shops; this index counts a shop's followers.
    __table_args__ = (Index("ix_shop_follows_shop_id", "shop_id"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    shop_id: Mapped[int] = mapped_column(
        ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
