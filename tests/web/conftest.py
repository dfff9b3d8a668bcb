"""What the page tests share."""

from tests.orders.conftest import market  # noqa: F401 - the orders tests' shop, reused
from tests.web.test_browser import chromium  # noqa: F401 - the system Chromium fixture
