"""The shared page helpers: money, content negotiation for errors, query strings."""

import pytest
from starlette.requests import Request

from originlive.web.errors import wants_html
from originlive.web.templating import money, query, templates


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [
        (1250, "CNY", "¥12.50"),
        (5, "CNY", "¥0.05"),
        (0, "CNY", "¥0.00"),
        (123456789, "CNY", "¥1,234,567.89"),
        (-1999, "CNY", "-¥19.99"),
        (1000, "USD", "USD 10.00"),
    ],
)
def test_money(cents: int, currency: str, shown: str) -> None:
    assert money(cents, currency) == shown


@pytest.mark.parametrize("wrong", [12.5, "1250", True, None])
def test_money_refuses_anything_but_integer_cents(wrong: object) -> None:
    with pytest.raises(TypeError):
        money(wrong)  # type: ignore[arg-type]


def request(path: str, accept: str | None) -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return Request({"type": "http", "method": "GET", "path": path, "headers": headers})


@pytest.mark.parametrize(
    ("path", "accept", "html"),
    [
        ("/products/1", "text/html,application/xhtml+xml,*/*;q=0.8", True),
        ("/products/1", "*/*", False),
        ("/products/1", None, False),
        ("/products/1", "application/json", False),
        ("/products/1", "application/json, text/html;q=0.9", False),
        ("/products/1", "text/*", True),
        ("/products/1", "text/html;q=0, */*", False),
        ("/api/v1/products/1", "text/html", False),
        ("/api", "text/html", False),
        ("/apiary", "text/html", True),
    ],
)
def test_error_pages_go_to_browsers_only(path: str, accept: str | None, html: bool) -> None:
    assert wants_html(request(path, accept)) is html


def test_query_drops_empty_values_and_the_first_page() -> None:
    assert query({"q": "茶", "region": ""}, page=2) == "?q=%E8%8C%B6&page=2"
    assert query({"q": "", "region": None}, page=1) == "?"


def test_feature_templates_are_found_under_their_package_name() -> None:
    assert templates.env.loader is not None
    names = templates.env.list_templates()
    assert {"base.html", "accounts/login.html", "catalog/product.html"} <= set(names)
