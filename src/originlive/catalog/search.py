"""Which products a listing shows, in which order, and how many: the one query of product
search and of every shop's product list, in front of SQLite FTS5 and PostgreSQL pg_trgm.

Both backends index ``products.search_text``, which the service rewrites whenever a product,
its origin or its shop's name changes. On SQLite, triggers (migration 0002) copy that column
into the external-content FTS5 table ``products_fts`` (trigram tokenizer: substrings of three or
more characters match, Chinese included, with no word segmenter). On PostgreSQL a GIN
``gin_trgm_ops`` index on the column serves ``ILIKE '%term%'``.

The order: products with more of the words in their title first, then the newest. The
statements are plain SQL on the DB-API cursor (``rawsql``): through SQLAlchemy Core each cost
more to build than SQLite takes to run it. ``page`` runs on any synchronous connection: the
app's reader (``batching.create_reader``) for the JSON API, the request's session
(``AsyncConnection.run_sync``) for the pages that show ORM objects.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from originlive import rawsql
from originlive.catalog.models import ProductStatus, ShopStatus

MAX_TERMS = 8
# The trigram tokenizer indexes runs of three characters; shorter terms cannot be looked up
# in it and are matched with LIKE over the same text instead.
_TRIGRAM = 3


def terms(q: str | None) -> list[str]:
    """The distinct words of ``q``, at most ``MAX_TERMS`` of them."""
    return list(dict.fromkeys(q.split()))[:MAX_TERMS] if q else []


def _contains(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _starts(text: str) -> str:
    # As SQLAlchemy's startswith(autoescape=True): '/' escapes, so '/' itself is doubled.
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"{escaped}%"


def _fts_phrase(term: str) -> str:
    # A quoted phrase is taken literally: FTS5 operators in the user's text mean nothing.
    return '"' + term.replace('"', '""') + '"'


@dataclass(frozen=True)
class Listing:
    """What a listing asks for: ``words`` (see ``terms``), an origin subtree (the region's
    ``path``), a shop, a category; ``public``: only what buyers may see (active products of
    approved shops)."""

    words: tuple[str, ...] = ()
    region_path: str | None = None
    shop_id: int | None = None
    category: str | None = None
    public: bool = True


@dataclass(frozen=True)
class _Sql:
    source: str  # FROM ... WHERE ...
    rank: str  # how many of the words the title has (0 without words)
    newest: str  # the column that orders products newest first, descending
    params: dict[str, Any]


def _sql(dialect: str, listing: Listing) -> _Sql:
    sqlite = dialect == "sqlite"
    # What SQLAlchemy's ilike() compiles to on each backend.
    like = "lower({}) LIKE lower(:{}) ESCAPE '\\'" if sqlite else "{} ILIKE :{} ESCAPE '\\'"
    words = listing.words
    params: dict[str, Any] = {f"w{i}": _contains(w) for i, w in enumerate(words)}
    tables, newest = "products", "products.id"
    conditions: list[str] = []
    short = list(range(len(words)))  # on PostgreSQL, ILIKE over the trigram-indexed column
    if sqlite:
        short = [i for i, w in enumerate(words) if len(w) < _TRIGRAM]
        if long_words := [w for w in words if len(w) >= _TRIGRAM]:
            # The index's matches lead: SQLite reads them newest first straight from it
            # (rowid is the product's id), where "id IN (matches)" first copied and sorted
            # them all, for each page and for the count.
            tables = "products_fts JOIN products ON products.id = products_fts.rowid"
            newest = "products_fts.rowid"
            conditions.append("products_fts.search_text MATCH :fts")
            params["fts"] = " ".join(map(_fts_phrase, long_words))  # implicit AND
    conditions += [like.format("products.search_text", f"w{i}") for i in short]
    if listing.public:
        tables += " JOIN shops ON shops.id = products.shop_id"
        # On SQLite the unary + keeps the planner from starting at the shops' status index
        # and then probing each approved shop's products for every match of the text.
        conditions += [
            ("+" if sqlite else "") + "shops.status = :approved",
            "products.status = :active",
        ]
        params |= {"approved": ShopStatus.APPROVED.value, "active": ProductStatus.ACTIVE.value}
    if listing.shop_id is not None:
        conditions.append("products.shop_id = :shop_id")
        params["shop_id"] = listing.shop_id
    if listing.category is not None:
        conditions.append("products.category = :category")
        params["category"] = listing.category
    if listing.region_path is not None:
        conditions.append(
            "products.origin_region_code IN"
            " (SELECT code FROM regions WHERE path LIKE :subtree ESCAPE '/')"
        )
        params["subtree"] = _starts(listing.region_path)
    in_title = [f"CASE WHEN {like.format('products.title', f'w{i}')} THEN 1 ELSE 0 END"
                for i in range(len(words))]  # fmt: skip
    where = " AND ".join(conditions) or "1 = 1"
    return _Sql(f"FROM {tables} WHERE {where}", " + ".join(in_title) or "0", newest, params)


def page(conn: Connection, *, listing: Listing, limit: int, offset: int) -> tuple[list[int], int]:
    """The ids of a page of matching products in order, and how many match in all.

    The order is by rank (``_Sql.rank``, higher first), then newest first. Rather than rank
    every match and sort them all for one page, it reads the matches of one rank at a time,
    best first, newest first as the indexes serve them, and stops once the page is full: of
    1,000 matches, a first page ranks a few dozen. The count reads each match once, unranked.
    Only a page that starts past the matches of a rank needs how many each rank has (one more
    pass over the matches).
    """
    sql = _sql(conn.dialect.name, listing)
    total = rawsql.execute(conn, f"SELECT count(*) {sql.source}", **sql.params).fetchone()[0]
    best = len(listing.words)
    ids: list[int] = []
    skip = offset  # how many of the ranks still to read come before the page
    counts: dict[int, int] | None = None
    for rank in range(best, -1, -1):
        if offset + len(ids) >= total or len(ids) >= limit:
            break
        if counts is not None and skip >= counts.get(rank, 0):
            skip -= counts.get(rank, 0)
            continue
        found = _of_rank(conn, sql, rank=rank, ranked=best > 0, limit=limit - len(ids), offset=skip)
        ids += found
        if found or skip == 0:
            skip = 0  # the page reached the end of this rank: the next starts at its first
        else:  # the page starts past this rank's matches, by as many as it has
            if counts is None:
                grouped = f"SELECT {sql.rank}, count(*) {sql.source} GROUP BY 1"
                counts = dict(rawsql.execute(conn, grouped, **sql.params).fetchall())
            skip = max(skip - counts.get(rank, 0), 0)
    # Each statement sees what was committed when it ran: a product whose title changed in
    # between may be found at two ranks.
    return list(dict.fromkeys(ids)), total


def _of_rank(
    conn: Connection, sql: _Sql, *, rank: int, ranked: bool, limit: int, offset: int
) -> list[int]:
    where = f" AND {sql.rank} = :rank" if ranked else ""
    rows = rawsql.execute(
        conn,
        f"SELECT products.id {sql.source}{where} ORDER BY {sql.newest} DESC"
        " LIMIT :limit OFFSET :offset",
        **sql.params,
        rank=rank,
        limit=limit,
        offset=offset,
    )
    return [row[0] for row in rows.fetchall()]
