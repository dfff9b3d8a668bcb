"""Migration 0018 on both databases: it makes the payout tables as the models describe
them, and goes down and up again."""

from tests.migrations.migrating import down_and_up

TABLES = {"payouts", "payout_events"}


def test_the_tables_match_the_models_and_go_down_and_up(url: str) -> None:
    assert down_and_up(url, "0018", "0017", TABLES)[0] == set()
