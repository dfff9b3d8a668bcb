"""What the page tests share."""

from tests.web.test_browser import chromium  # noqa: F401 - the system Chromium fixture
