"""Which shop, product or SKU a request may reach: one dependency per rule.

Owners and operators reach everything of a shop. Anyone else may read what is on sale
(an approved shop, an active product of one) and change nothing: changing something they
can see is a 403, and anything they cannot see is a 404, so the ids of pending shops and
hidden products give nothing away.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import CurrentUser, OptionalUser
from originlive.accounts.models import Role, User
from originlive.catalog import service
from originlive.catalog.models import Product, Shop, ShopStatus, Sku, product_on_sale
from originlive.catalog.storage import ImageStorage
from originlive.db import SessionDep
from originlive.errors import Forbidden, NotAuthenticated, NotFound
from originlive.inputs import MAX_ID

# An id in a path: a number past the keys' range is bad input, refused before a driver sees it.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def can_manage(user: User | None, shop: Shop) -> bool:
    """Owners manage their shops; operators manage every shop."""
    return user is not None and (user.id == shop.owner_id or user.has_role(Role.OPERATOR))


def on_sale(product: Product) -> bool:
    """Whether buyers may see the product: active, in an approved shop."""
    return product_on_sale(product.status, product.shop.status)


def _authorize(user: User | None, shop: Shop, *, public: bool, write: bool, what: str) -> None:
    if can_manage(user, shop) or (public and not write):
        return
    if public:
        raise Forbidden(f"You do not manage {what}.")
    raise NotFound(f"No {what}.")


async def _shop(shop_id: int, session: AsyncSession, user: User | None, write: bool) -> Shop:
    shop = await service.get_shop(session, shop_id=shop_id)
    if shop is None:
        raise NotFound(f"No shop {shop_id}.")
    public = shop.status == ShopStatus.APPROVED
    _authorize(user, shop, public=public, write=write, what=f"shop {shop_id}")
    return shop


async def get_visible_shop(shop_id: RowId, session: SessionDep, user: OptionalUser) -> Shop:
    """The shop from the path if it is approved or the caller manages it."""
    return await _shop(shop_id, session, user, write=False)


async def get_owned_shop(shop_id: RowId, session: SessionDep, user: CurrentUser) -> Shop:
    """The shop from the path if the caller manages it."""
    return await _shop(shop_id, session, user, write=True)


async def _product(
    product_id: int, session: AsyncSession, user: User | None, write: bool
) -> Product:
    product = await service.get_product(session, product_id=product_id)
    if product is None:
        raise NotFound(f"No product {product_id}.")
    what = f"product {product_id}"
    _authorize(user, product.shop, public=on_sale(product), write=write, what=what)
    return product


async def get_visible_product(
    product_id: RowId, session: SessionDep, user: OptionalUser
) -> Product:
    """The product from the path if it is on sale or the caller manages its shop."""
    return await _product(product_id, session, user, write=False)


async def get_owned_product(product_id: RowId, session: SessionDep, user: CurrentUser) -> Product:
    """The product from the path if the caller manages its shop."""
    return await _product(product_id, session, user, write=True)


async def get_owned_sku(sku_id: RowId, session: SessionDep, user: CurrentUser) -> Sku:
    """The SKU from the path if the caller manages its shop."""
    sku = await service.get_sku(session, sku_id=sku_id)
    if sku is None:
        raise NotFound(f"No SKU {sku_id}.")
    public = on_sale(sku.product)
    _authorize(user, sku.product.shop, public=public, write=True, what=f"SKU {sku_id}")
    return sku


def get_image_storage(request: Request) -> ImageStorage:
    """The app's image storage backend."""
    storage: ImageStorage = request.app.state.image_storage
    return storage


VisibleShop = Annotated[Shop, Depends(get_visible_shop)]
OwnedShop = Annotated[Shop, Depends(get_owned_shop)]
VisibleProduct = Annotated[Product, Depends(get_visible_product)]
OwnedProduct = Annotated[Product, Depends(get_owned_product)]
OwnedSku = Annotated[Sku, Depends(get_owned_sku)]
Storage = Annotated[ImageStorage, Depends(get_image_storage)]


@dataclass(frozen=True)
class ShopScope:
    """Which shops a listing may show the caller."""

    statuses: tuple[ShopStatus, ...]
    owner_id: int | None = None


async def get_shop_scope(
    user: OptionalUser,
    mine: Annotated[bool, Query(description="Only the caller's own shops, in any state.")] = False,
    status: Annotated[
        ShopStatus | None, Query(description="Other than approved: own shops or operators only.")
    ] = None,
) -> ShopScope:
    """Approved shops for everyone; one's own shops in any state; any shop for operators."""
    if mine:
        if user is None:
            raise NotAuthenticated("Sign in to list your shops.")
        return ShopScope(statuses=(status,) if status else tuple(ShopStatus), owner_id=user.id)
    if status is None or status == ShopStatus.APPROVED:
        return ShopScope(statuses=(ShopStatus.APPROVED,))
    if user is None or not user.has_role(Role.OPERATOR):
        raise Forbidden("Only operators may list shops that are not approved.")
    return ShopScope(statuses=(status,))


ShopListScope = Annotated[ShopScope, Depends(get_shop_scope)]


def get_off_sale(request: Request) -> service.OffSale:
    """What ends a stopped shop's or hidden product's sales (``live.control.StopSelling``)."""
    off_sale: service.OffSale = request.app.state.off_sale
    return off_sale


OffSaleDep = Annotated[service.OffSale, Depends(get_off_sale)]
