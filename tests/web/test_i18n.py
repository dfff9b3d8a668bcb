"""The pages in Chinese and in English: chosen from the browser, switchable, kept."""

import httpx

from originlive.web.templating import pick_language, translations


def test_every_message_has_its_chinese() -> None:
    from babel.messages.pofile import read_po

    from originlive.web.templating import LOCALE_DIR

    with (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []
    assert translations("zh_CN").gettext("Buy now") == "立即抢购"


def test_the_language_is_the_cookie_then_the_browser_then_chinese() -> None:
    assert pick_language(None, None) == "zh_CN"
    assert pick_language(None, "en-US,en;q=0.9") == "en"
    assert pick_language(None, "zh-TW,zh;q=0.9,en;q=0.5") == "zh_CN"
    assert pick_language(None, "fr-FR,en;q=0.5") == "en"
    assert pick_language("en", "zh-CN") == "en"
    assert pick_language("xx", "zh-CN") == "zh_CN"  # a cookie we do not know is ignored


async def test_pages_follow_the_browser_and_the_switch(client: httpx.AsyncClient) -> None:
    chinese = await client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert '<html lang="zh-CN">' in chinese.text and "首页" in chinese.text
    assert "Accept-Language" in chinese.headers["vary"]
    english = await client.get("/")  # the test client asks for English
    assert '<html lang="en">' in english.text and ">Home<" in english.text

    switched = await client.get("/lang/zh_CN", params={"next": "/search?q=x"})
    assert switched.status_code == 303 and switched.headers["location"] == "/search?q=x"
    assert "lang=zh_CN" in switched.headers["set-cookie"]
    kept = await client.get("/")  # the cookie now beats the browser's English
    assert "首页" in kept.text
    away = await client.get("/lang/en", params={"next": "https://evil.example/"})
    assert away.headers["location"] == "/"  # never sent to another site
    assert (await client.get("/lang/fr")).status_code == 404


def test_the_catalogue_holds_every_message_of_the_code() -> None:
    """A string added to a page without running ``make messages`` fails here."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from babel.messages.pofile import read_po

    from originlive.web.templating import LOCALE_DIR

    root = Path(__file__).resolve().parents[2]
    pybabel = Path(sys.executable).with_name("pybabel")
    with tempfile.TemporaryDirectory() as work:
        pot = Path(work) / "messages.pot"
        subprocess.run(
            [str(pybabel), "extract", "-F", "babel.cfg", "-k", "N_", "-k", "_",
             "--omit-header", "-o", str(pot), "."],
            cwd=root, capture_output=True, check=True,
        )  # fmt: skip
        with pot.open("rb") as f:
            wanted = {m.id for m in read_po(f) if m.id}
    assert len(wanted) > 100
    with (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalogue = [m for m in read_po(f) if m.id]
    # A fuzzy entry (Babel's guess from a similar message) is not compiled: it shows English.
    have = {m.id for m in catalogue if m.string and not m.fuzzy}
    assert wanted - have == set()
