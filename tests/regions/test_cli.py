"""``originlive regions load-villages``, run as a user would, on a deployment of its own: a copy
of this run's migrated SQLite database in a temporary data directory (migrating a new one
would cost the suite a second and a half)."""

import os
import sqlite3
from pathlib import Path

import pytest

from tests.regions.conftest import HEADER, csv_row
from tests.test_cli import run

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """An embedded deployment in a temporary data directory, holding the run's database."""
    data = tmp_path / "data"
    data.mkdir()
    source = sqlite3.connect(database_url.split("///", 1)[1])
    copy = sqlite3.connect(data / "originlive.db")
    try:
        source.backup(copy)  # consistent, with whatever is still in the source's WAL
    finally:
        copy.close()
        source.close()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORIGINLIVE_")}
    return environ | {"ORIGINLIVE_DATA_DIR": str(data)}


def _villages(env: dict[str, str], county: str) -> int:
    db = sqlite3.connect(Path(env["ORIGINLIVE_DATA_DIR"]) / "originlive.db")
    try:
        query = "SELECT count(*) FROM regions WHERE level = 'village' AND code LIKE ?"
        return int(db.execute(query, (county + "%",)).fetchone()[0])
    finally:
        db.close()


def test_load_a_countys_villages(env: dict[str, str], tmp_path: Path) -> None:
    first = run(env, "regions", "load-villages", "--county", "530102")
    assert first.returncode == 0, first.stderr
    assert "101 villages of 530102 五华区 added" in first.stdout
    again = run(env, "regions", "load-villages", "--county", "530102")
    assert again.returncode == 0, again.stderr
    assert "0 villages of 530102 五华区 added (101 were there already)" in again.stdout
    assert _villages(env, "530102") == 101

    unknown = run(env, "regions", "load-villages", "--county", "999999")
    assert unknown.returncode != 0 and "No county has the code '999999'" in unknown.stderr

    good = tmp_path / "anning.csv"
    good.write_text(HEADER + csv_row("530181001001", "文化路社区居委会"), encoding="utf-8")
    broken = tmp_path / "broken.csv"
    broken.write_text(HEADER + csv_row("530181001001", "") + csv_row("5301", "x"), "utf-8")
    refused = run(env, "regions", "load-villages", "--county", "530181", "--csv", str(broken))
    assert refused.returncode != 0
    assert "line 2 has no name" in refused.stderr and "line 3 has '5301'" in refused.stderr
    assert _villages(env, "530181") == 0
    loaded = run(env, "regions", "load-villages", "--county", "530181", "--csv", str(good))
    assert loaded.returncode == 0, loaded.stderr
    assert "1 villages of 530181 安宁市 added" in loaded.stdout
    assert _villages(env, "530181") == 1
