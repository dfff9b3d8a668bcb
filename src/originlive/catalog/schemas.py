"""API shapes of the catalog feature."""

import datetime as dt
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from originlive.catalog.models import ProductImage, ProductStatus, ProvenanceKind, ShopStatus
from originlive.catalog.storage import ImageStorage
from originlive.regions.models import Region, RegionLevel
from originlive.text import multi_line, one_line

MAX_SKUS = 50
MAX_PROVENANCE_AT_ONCE = 50


RegionCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6,12}$")]
ShopName = Annotated[str, one_line(80)]
ShopDescription = Annotated[str, multi_line(2000)]
ContactName = Annotated[str, one_line(40)]
ContactPhone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,16}[0-9]$")]
Title = Annotated[str, one_line(120)]
ProductDescription = Annotated[str, multi_line(5000)]
Category = Annotated[str, one_line(40)]
SkuName = Annotated[str, one_line(60)]
# Query metadata, folded as the text they look for was: ``Annotated[str, Query(), SearchWords]``.
SearchWords = one_line(100, blank=True)
CategoryFilter = one_line(40, blank=True)
# Strict: 12.5 (or "1250", or true) is refused rather than rounded or coerced.
PriceCents = Annotated[int, Field(strict=True, ge=0, le=10**11)]
Stock = Annotated[int, Field(strict=True, ge=0, le=10**8)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Patch(_Input):
    """A partial update: omitted fields stay as they are; ``null`` clears only optional ones."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("may not be null")
        return value


class Place(BaseModel):
    """A region with the names of every level down to it.

    Built from a ``Region`` row given ``context={"place_names": ...}`` (see
    ``service.place_names``), so that a page of results costs one query for all its places.
    """

    code: str
    name: str
    level: RegionLevel
    path_names: list[str] = Field(description="From the province down, e.g. 云南省, 昆明市.")
    full_name: str = Field(description="The path names joined by spaces.")

    @model_validator(mode="before")
    @classmethod
    def _from_region(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, Region):
            return value
        names = (info.context or {})["place_names"][value.code]
        return {
            "code": value.code,
            "name": value.name,
            "level": value.level,
            "path_names": names,
            "full_name": " ".join(names),
        }


class ShopCreate(_Input):
    name: ShopName
    region_code: RegionCode
    description: ShopDescription = ""
    contact_name: ContactName | None = None
    contact_phone: ContactPhone | None = None


class ShopUpdate(_Patch):
    nullable = frozenset({"contact_name", "contact_phone"})

    name: ShopName | None = None
    region_code: RegionCode | None = None
    description: ShopDescription | None = None
    contact_name: ContactName | None = None
    contact_phone: ContactPhone | None = None


class ShopReject(_Input):
    reason: Annotated[str, one_line(500)]


class Shop(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    status: ShopStatus
    owner_id: int
    region: Place
    contact_name: str | None
    contact_phone: str | None
    reject_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    followers: int = Field(default=0, description="How many buyers follow the shop.")


class ShopRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    status: ShopStatus
    region: Place


class SkuCreate(_Input):
    name: SkuName
    price_cents: PriceCents
    stock: Stock
    currency: Currency = "CNY"


class SkuUpdate(_Patch):
    name: SkuName | None = None
    price_cents: PriceCents | None = None
    stock: Stock | None = Field(
        default=None, description="Units on hand, set outright (not added to)."
    )


class Sku(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    product_id: int
    name: str
    price_cents: int
    currency: str
    stock: int


class ProvenanceCreate(_Input):
    batch: Annotated[str, one_line(40)] = Field(description="The lot or batch it describes.")
    kind: ProvenanceKind
    date: dt.date
    place: Annotated[str, one_line(120)]
    place_region_code: RegionCode | None = None
    note: Annotated[str, multi_line(1000)] | None = None
    photo_id: int | None = Field(default=None, description="An image uploaded to this product.")


class Image(BaseModel):
    """An uploaded image; built from a ``ProductImage`` row given ``context={"storage": ...}``."""

    id: int
    url: str
    content_type: str
    size_bytes: int

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, ProductImage):
            return value
        storage: ImageStorage = (info.context or {})["storage"]
        return {
            "id": value.id,
            "url": storage.url(value.key),
            "content_type": value.content_type,
            "size_bytes": value.size_bytes,
        }


class Provenance(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    batch: str
    kind: ProvenanceKind
    date: dt.date = Field(validation_alias="occurred_on")
    place: str
    place_region: Place | None
    note: str | None
    photo: Image | None


class ProductCreate(_Input):
    title: Title
    description: ProductDescription = ""
    # Optional: API v1 clients list products without one; empty is "not categorised".
    category: Category = Field(default="", description="Empty (the default): not categorised.")
    origin_region_code: RegionCode
    skus: list[SkuCreate] = Field(min_length=1, max_length=MAX_SKUS)
    provenance: list[ProvenanceCreate] = Field(default=[], max_length=MAX_PROVENANCE_AT_ONCE)


class ProductUpdate(_Patch):
    title: Title | None = None
    description: ProductDescription | None = None
    category: Category | None = None
    origin_region_code: RegionCode | None = None
    status: ProductStatus | None = Field(default=None, description="hidden takes it off sale.")


class Product(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    shop_id: int
    shop: ShopRef
    title: str
    description: str
    category: str
    status: ProductStatus
    origin: Place
    skus: list[Sku]
    provenance: list[Provenance]
    images: list[Image]
    created_at: dt.datetime
    updated_at: dt.datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="How many match, across all pages.")
    limit: int
    offset: int
