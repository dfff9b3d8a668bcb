"""Migration 0014 on both databases: it makes the selection library's tables as the models
describe them, and goes down and up again."""

from tests.migrations.migrating import down_and_up

TABLES = {
    "commission_plans",
    "commission_plan_products",
    "commission_plan_anchors",
    "plan_memberships",
    "sample_requests",
}


def test_the_tables_match_the_models_and_go_down_and_up(url: str) -> None:
    assert down_and_up(url, "0014", "0013", TABLES)[0] == set()
