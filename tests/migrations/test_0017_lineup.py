"""Migration 0017 on both databases: live sessions may have no shop (an anchor's own), and the
line-up's table is as the model describes it; it goes down and up again."""

from tests.migrations.migrating import down_and_up

TABLES = {"live_sessions", "lineup_items"}


def test_the_tables_match_the_models_and_go_down_and_up(url: str) -> None:
    tables, differences = down_and_up(url, "0017", "0016", TABLES)
    assert tables == {"live_sessions"}
    shop_id = [d for d in differences if d[0][0] == "modify_nullable"]
    assert [(d[0][2], d[0][3], d[0][6]) for d in shop_id] == [("live_sessions", "shop_id", True)]
