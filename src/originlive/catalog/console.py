"""The merchant's console, catalog part: one's shops, the shop's profile, its products with
their SKUs, stock, photos and provenance.

Every form posts plainly and answers with a redirect (303) on success or the same page with
what was wrong (422); the JSON API's schemas and services judge and do the work, so a page
cannot accept what the API refuses. Authorization is the API's: ``OwnedShop`` and friends.
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from originlive.accounts.deps import CurrentUser
from originlive.accounts.models import User
from originlive.catalog import schemas, service
from originlive.catalog.deps import (
    OffSaleDep,
    OwnedProduct,
    OwnedShop,
    OwnedSku,
    RowId,
    Storage,
)
from originlive.catalog.models import Product, ProductStatus, ProvenanceKind, Shop, ShopStatus
from originlive.catalog.storage import UnsupportedImage
from originlive.db import SessionDep
from originlive.errors import Conflict, InvalidInput, PayloadTooLarge
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.forms import cents, error_on, field_errors, refused_field, typed, whole
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=200)]
Text = Annotated[str, Form(max_length=6000)]
PRODUCTS_PAGE = 50

MESSAGES = {
    "name": N_("Enter a name of up to 80 characters."),
    "region_code": N_("Choose the region from the list, or enter its code."),
    "origin_region_code": N_("Choose the region from the list, or enter its code."),
    "place_region_code": N_("Choose the region from the list, or enter its code."),
    "description": N_("The description is too long."),
    "contact_name": N_("Enter a name of up to 40 characters."),
    "contact_phone": N_("Enter a phone number."),
    "title": N_("Enter a title of up to 120 characters."),
    "category": N_("Enter a category, such as fruit or tea."),
    "sku_name": N_("Name the variant, such as 5 kg box."),
    "price": N_("Enter a price in yuan, such as 29.90."),
    "stock": N_("Enter how many you have, as a whole number."),
    "batch": N_("Enter the batch or lot."),
    "kind": N_("Choose what happened."),
    "date": N_("Enter the date."),
    "place": N_("Enter where it happened."),
    "note": N_("The note is too long."),
    "photo": N_("Choose a JPEG, PNG or WebP photo."),
}
NAME_TAKEN = N_("Another shop already has a name that looks like this one.")
SAVED = N_("Saved.")
ON_SALE, HIDDEN = N_("On sale"), N_("Hidden")
KIND_NAMES = {
    ProvenanceKind.HARVEST: N_("Harvest"),
    ProvenanceKind.PRODUCTION: N_("Production"),
    ProvenanceKind.PROCESSING: N_("Processing"),
    ProvenanceKind.INSPECTION: N_("Inspection"),
}


def _optional(text: str) -> str | None:
    return text.strip() or None


def _done(url: str, flash: str = "saved") -> RedirectResponse:
    return RedirectResponse(f"{url}?done={flash}", status_code=303)


def _flash(done: str | None) -> str | None:
    return _(SAVED) if done else None


# Shops


@router.get("/console", response_class=HTMLResponse)
async def my_shops(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The shops one owns, each with its state; a form to open one."""
    shops, _total = await service.list_shops(
        session, statuses=tuple(ShopStatus), owner_id=user.id, limit=50
    )
    return _shops_page(request, shops, {}, {}, 200)


def _shops_page(
    request: Request, shops: Any, values: dict[str, str], errors: dict[str, str], status: int
) -> Response:
    context = {"shops": shops, "values": values, "errors": errors}
    return render(request, "catalog/console/shops.html", context, status_code=status)


@router.post("/console/shops", response_class=HTMLResponse)
async def open_shop(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    name: Line = "",
    region_code: Line = "",
    description: Text = "",
    contact_name: Line = "",
    contact_phone: Line = "",
) -> Response:
    """Open a shop; it sells once an operator approves it (unless the platform approves all)."""
    values = await typed(request)
    try:
        data = schemas.ShopCreate(
            name=name, region_code=region_code.strip(), description=description,
            contact_name=_optional(contact_name), contact_phone=_optional(contact_phone),
        )  # fmt: skip
        shop = await service.open_shop(
            session, owner=user, data=data,
            approve=request.app.state.settings.auto_approve_shops,
        )  # fmt: skip
    except ValidationError as exc:
        return await _shops_again(request, session, user, values, field_errors(exc, MESSAGES))
    except InvalidInput:  # an unknown region code
        errors = error_on(MESSAGES, "region_code")
        return await _shops_again(request, session, user, values, errors)
    except service.ShopNameTaken:
        errors = {"name": _(NAME_TAKEN)}
        return await _shops_again(request, session, user, values, errors, status=409)
    return _done(f"/console/shops/{shop.id}", "opened")


async def _shops_again(
    request: Request,
    session: SessionDep,
    user: User,
    values: dict[str, str],
    errors: Any,
    status: int = 422,
) -> Response:
    shops, _total = await service.list_shops(
        session, statuses=tuple(ShopStatus), owner_id=user.id, limit=50
    )
    return _shops_page(request, shops, values, errors, status)


def _profile(shop: Shop) -> dict[str, str]:
    fields = ("name", "region_code", "description", "contact_name", "contact_phone")
    return {name: getattr(shop, name) or "" for name in fields}


def _shop_page(
    request: Request,
    shop: Shop,
    values: dict[str, str],
    errors: dict[str, str],
    flash: Any,
    status: int | None = None,
) -> Response:
    context = {"shop": shop, "values": values, "errors": errors, "flash": flash, "tab": "profile"}
    status = status or (422 if errors else 200)
    return render(request, "catalog/console/shop.html", context, status_code=status)


@router.get("/console/shops/{shop_id}", response_class=HTMLResponse)
async def shop_profile(request: Request, shop: OwnedShop, done: str | None = None) -> Response:
    """The shop's state and its profile, to change."""
    return _shop_page(request, shop, _profile(shop), {}, _flash(done))


@router.post("/console/shops/{shop_id}", response_class=HTMLResponse)
async def update_shop(
    request: Request,
    shop: OwnedShop,
    session: SessionDep,
    user: CurrentUser,
    name: Line = "",
    region_code: Line = "",
    description: Text = "",
    contact_name: Line = "",
    contact_phone: Line = "",
) -> Response:
    """Change the shop's name, place, description or contact."""
    values = await typed(request)
    try:
        data = schemas.ShopUpdate(
            name=name, region_code=region_code.strip(), description=description,
            contact_name=_optional(contact_name), contact_phone=_optional(contact_phone),
        )  # fmt: skip
        await service.update_shop(session, shop=shop, actor=user, data=data)
    except ValidationError as exc:
        return _shop_page(request, shop, values, field_errors(exc, MESSAGES), None)
    except InvalidInput:  # an unknown region code
        return _shop_page(request, shop, values, error_on(MESSAGES, "region_code"), None)
    except service.ShopNameTaken:
        return _shop_page(request, shop, values, {"name": _(NAME_TAKEN)}, None, status=409)
    return _done(f"/console/shops/{shop.id}")


# Products


async def _products_page(
    request: Request,
    session: SessionDep,
    storage: Storage,
    shop: Shop,
    values: dict[str, str],
    errors: dict[str, str],
    flash: Any = None,
) -> Response:
    products, total = await service.search_products(
        session, shop_id=shop.id, public=False, limit=PRODUCTS_PAGE, offset=0
    )
    context = {"shop": shop, "products": products, "total": total, "values": values,
               "errors": errors, "flash": flash, "tab": "products",
               "image_url": storage.url}  # fmt: skip
    status = 422 if errors else 200
    return render(request, "catalog/console/products.html", context, status_code=status)


@router.get("/console/shops/{shop_id}/products", response_class=HTMLResponse)
async def products(
    request: Request, shop: OwnedShop, session: SessionDep, storage: Storage
) -> Response:
    """The shop's products with their SKUs and stock, hidden ones too; a form for a new one."""
    return await _products_page(request, session, storage, shop, {"stock": "0"}, {})


@router.post("/console/shops/{shop_id}/products", response_class=HTMLResponse)
async def create_product(
    request: Request,
    shop: OwnedShop,
    session: SessionDep,
    storage: Storage,
    user: CurrentUser,
    title: Line = "",
    category: Line = "",
    origin_region_code: Line = "",
    description: Text = "",
    sku_name: Line = "",
    price: Line = "",
    stock: Line = "",
) -> Response:
    """List a product with its first SKU; its photos and provenance are added on its page."""
    values = await typed(request)
    sku = _sku_fields(sku_name, price, stock)
    try:
        data = schemas.ProductCreate(
            title=title, category=category, origin_region_code=origin_region_code.strip(),
            description=description, skus=[sku],
        )  # fmt: skip
        product = await service.create_product(session, shop=shop, actor=user, data=data)
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES, {"name": "sku_name", "price_cents": "price"})
        return await _products_page(request, session, storage, shop, values, errors)
    except InvalidInput:  # an unknown origin
        errors = error_on(MESSAGES, "origin_region_code")
        return await _products_page(request, session, storage, shop, values, errors)
    return _done(f"/console/products/{product.id}", "created")


def _sku_fields(name: str, price: str, stock: str) -> dict[str, Any]:
    # -1 is refused by the schema, which names the field: a form's "abc" is never 0.
    price_cents, count = cents(price), whole(stock)
    return {"name": name, "price_cents": -1 if price_cents is None else price_cents,
            "stock": -1 if count is None else count}  # fmt: skip


def _product_page(
    request: Request,
    product: Product,
    storage: Storage,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    form: str | None = None,
    flash: Any = None,
) -> Response:
    """The product's page; ``form`` names the form that ``errors`` and ``values`` are for
    (``details``, ``sku``, ``skus`` (a SKU's row), ``photos`` or ``provenance``)."""
    filled = {
        "details": {"title": product.title, "category": product.category,
                    "origin_region_code": product.origin_region_code,
                    "description": product.description, "status": product.status.value},
        "sku": {"stock": "0"},
        "skus": {},
        "provenance": {"date": dt.date.today().isoformat(), "kind": ProvenanceKind.HARVEST.value},
    }  # fmt: skip
    if form is not None:
        filled[form] = values or {}
    photos = [(str(image.id), _("Photo %(n)s", n=n)) for n, image in enumerate(product.images, 1)]
    context = {
        "shop": product.shop, "product": product, "filled": filled, "form": form,
        "errors": errors or {}, "flash": flash, "tab": "products", "image_url": storage.url,
        "kind_choices": [(kind.value, _(KIND_NAMES[kind])) for kind in ProvenanceKind],
        "photo_choices": [("", _("None")), *photos],
        "status_choices": [(ProductStatus.ACTIVE.value, _(ON_SALE)),
                           (ProductStatus.HIDDEN.value, _(HIDDEN))],
    }  # fmt: skip
    status = 422 if errors else 200
    return render(request, "catalog/console/product.html", context, status_code=status)


@router.get("/console/products/{product_id}", response_class=HTMLResponse)
async def product_page(
    request: Request, product: OwnedProduct, storage: Storage, done: str | None = None
) -> Response:
    """One product: its details, SKUs and stock, photos and provenance, each with its form."""
    return _product_page(request, product, storage, flash=_flash(done))


@router.post("/console/products/{product_id}", response_class=HTMLResponse)
async def update_product(
    request: Request,
    product: OwnedProduct,
    session: SessionDep,
    storage: Storage,
    user: CurrentUser,
    off_sale: OffSaleDep,
    title: Line = "",
    category: Line = "",
    origin_region_code: Line = "",
    description: Text = "",
    status: Line = "",
) -> Response:
    """Change the product's text, origin, or whether it is on sale."""
    values = await typed(request)
    try:
        data = schemas.ProductUpdate.model_validate(
            values | {"origin_region_code": origin_region_code.strip()}
        )
        await service.update_product(
            session, product=product, actor=user, data=data, off_sale=off_sale
        )
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES)
        return _product_page(
            request, product, storage, errors=errors, values=values, form="details"
        )
    except InvalidInput:  # an unknown origin
        errors = error_on(MESSAGES, "origin_region_code")
        return _product_page(
            request, product, storage, errors=errors, values=values, form="details"
        )
    return _done(f"/console/products/{product.id}")


@router.post("/console/products/{product_id}/skus", response_class=HTMLResponse)
async def add_sku(
    request: Request,
    product: OwnedProduct,
    session: SessionDep,
    storage: Storage,
    user: CurrentUser,
    sku_name: Line = "",
    price: Line = "",
    stock: Line = "",
) -> Response:
    """Add a variant (a size, a grade) with its price and stock."""
    values = await typed(request)
    try:
        data = schemas.SkuCreate.model_validate(_sku_fields(sku_name, price, stock))
        await service.add_sku(session, product=product, actor=user, data=data)
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES, {"name": "sku_name", "price_cents": "price"})
        return _product_page(request, product, storage, errors=errors, values=values, form="sku")
    return _done(f"/console/products/{product.id}")


@router.post("/console/skus/{sku_id}", response_class=HTMLResponse)
async def update_sku(
    request: Request,
    sku: OwnedSku,
    session: SessionDep,
    storage: Storage,
    user: CurrentUser,
    price: Line = "",
    stock: Line = "",
) -> Response:
    """Change a SKU's price or the stock on hand (after a harvest, a count)."""
    fields = _sku_fields(sku.name, price, stock)
    try:
        data = schemas.SkuUpdate(price_cents=fields["price_cents"], stock=fields["stock"])
    except ValidationError as exc:
        product = await service.get_product(session, product_id=sku.product_id)
        assert product is not None
        errors = field_errors(exc, MESSAGES, {"price_cents": "price"})
        values = await typed(request) | {"sku_id": str(sku.id)}
        return _product_page(request, product, storage, errors=errors, values=values, form="skus")
    await service.update_sku(session, sku=sku, actor=user, data=data)
    return _done(f"/console/products/{sku.product_id}")


@router.post("/console/products/{product_id}/photos", response_class=HTMLResponse)
async def upload_photo(
    request: Request,
    product: OwnedProduct,
    session: SessionDep,
    storage: Storage,
    user: CurrentUser,
    photo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add a photo; its format is read from its bytes (JPEG, PNG or WebP)."""
    # BodyLimitMiddleware has already refused bodies over settings.max_upload_bytes.
    data = await photo.read() if photo is not None else b""
    errors = error_on(MESSAGES, "photo")  # none chosen, or not an image
    if data:
        try:
            await service.add_image(
                session, product=product, actor=user, storage=storage, data=data
            )
            return _done(f"/console/products/{product.id}")
        except (Conflict, PayloadTooLarge) as exc:  # a photo too many, or too large: say so
            errors = {"photo": exc.detail}
        except UnsupportedImage:
            pass
    return _product_page(request, product, storage, errors=errors, values={}, form="photos")


@router.post("/console/products/{product_id}/photos/{image_id}/delete")
async def delete_photo(
    image_id: RowId, product: OwnedProduct, session: SessionDep, storage: Storage, user: CurrentUser
) -> Response:
    """Remove a photo (provenance entries showing it keep their text)."""
    await service.delete_image(
        session, product=product, actor=user, storage=storage, image_id=image_id
    )
    return _done(f"/console/products/{product.id}")


@router.post("/console/products/{product_id}/provenance", response_class=HTMLResponse)
async def add_provenance(
    request: Request,
    product: OwnedProduct,
    session: SessionDep,
    storage: Storage,
    user: CurrentUser,
    batch: Line = "",
    kind: Line = "",
    date: Line = "",
    place: Line = "",
    place_region_code: Line = "",
    note: Text = "",
    photo_id: Line = "",
) -> Response:
    """Record a step of a batch's history: harvested, produced, processed or inspected."""
    values = await typed(request)
    try:
        data = schemas.ProvenanceCreate.model_validate(
            values
            | {
                "place_region_code": _optional(place_region_code),
                "note": _optional(note),
                # -1 is refused by the schema, which names the field: "²" is not "no photo".
                "photo_id": (whole(photo_id) or -1) if photo_id else None,
            }
        )
        await service.add_provenance(session, product=product, actor=user, data=data)
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES, {"photo_id": "photo"})
        return _product_page(
            request, product, storage, errors=errors, values=values, form="provenance"
        )
    except InvalidInput as exc:  # an unknown place, or a photo not of this product
        field = refused_field(exc).replace("photo_id", "photo")
        errors = {field: _(MESSAGES.get(field, MESSAGES["place_region_code"]))}
        return _product_page(
            request, product, storage, errors=errors, values=values, form="provenance"
        )
    return _done(f"/console/products/{product.id}")
