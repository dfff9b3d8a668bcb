"""Migration 0010 on both databases: it makes the collection tables as the models describe
them, and goes down and up again."""

from tests.migrations.migrating import down_and_up

TABLES = {"collection_runs", "collection_growers", "collection_receipts"}


def test_the_tables_match_the_models_and_go_down_and_up(url: str) -> None:
    assert down_and_up(url, "0010", "0009", TABLES)[0] == set()
