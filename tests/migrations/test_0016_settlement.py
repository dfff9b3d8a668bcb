"""Migrations 0015 and 0016 on both databases: order lines' attribution and shops' split
rules as the models describe them, and down and up again."""

from tests.migrations.migrating import down_and_up

TABLES = {"flash_offers", "order_items", "split_rules", "journal_entries"}


def test_the_tables_match_the_models_and_go_down_and_up(url: str) -> None:
    tables, _differences = down_and_up(url, "0016", "0014", TABLES)
    assert tables == TABLES - {"split_rules"}
