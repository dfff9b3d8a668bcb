"""Demo data: placeholder until the catalog lands."""

from originlive.settings import Settings


async def seed(settings: Settings) -> str:
    """Load the demo shops; idempotent."""
    return f"demo data: nothing yet for {settings.data_dir}"
