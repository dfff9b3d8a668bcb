"""Every test of ``test_on_sale`` again, with the Redis gate in front of the database."""

import pytest

from originlive.settings import Settings
from tests.orders.test_on_sale import *  # noqa: F403 - the same tests, collected here again

pytestmark = pytest.mark.redis


@pytest.fixture
def settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})
