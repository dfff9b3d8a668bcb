"""One place that imports every feature's tables, for Alembic and the test set-up."""


def import_all_models() -> None:
    """Import each feature's models module so its tables join the metadata."""
    import originlive.accounts.models
    import originlive.affiliates.models
    import originlive.catalog.models
    import originlive.ledger.models
    import originlive.ledger.payouts.models
    import originlive.ledger.settlement.models
    import originlive.live.models
    import originlive.logistics.collection.models
    import originlive.logistics.models
    import originlive.orders.models
    import originlive.payments.models
    import originlive.regions.models  # noqa: F401
