"""Payments tests use the orders tests' shop and offer."""

from tests.orders.conftest import market  # noqa: F401 (a fixture)
