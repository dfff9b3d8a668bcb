"""Text search over products, one function in front of SQLite FTS5 and PostgreSQL pg_trgm.

Both backends index ``products.search_text``, which the service rewrites whenever a product,
its origin or its shop's name changes. On SQLite, triggers (migration 0002) copy that column
into the external-content FTS5 table ``products_fts`` (trigram tokenizer: substrings of three or
more characters match, Chinese included, with no word segmenter). On PostgreSQL a GIN
``gin_trgm_ops`` index on the column serves ``ILIKE '%term%'``.
"""

import operator
from functools import reduce

from sqlalchemy import ColumnElement, Integer, String, and_, case, column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.catalog.models import Product

MAX_TERMS = 8
# The trigram tokenizer indexes runs of three characters; shorter terms cannot be looked up
# in it and are matched with LIKE over the same text instead.
_TRIGRAM = 3

_fts = table("products_fts", column("rowid", Integer), column("search_text", String))


def _contains(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(term: str) -> str:
    # A quoted phrase is taken literally: FTS5 operators in the user's text mean nothing.
    return '"' + term.replace('"', '""') + '"'


def text_match(
    session: AsyncSession, q: str
) -> tuple[ColumnElement[bool], ColumnElement[int]] | None:
    """A condition for products containing every word of ``q``, and a rank (higher first).

    The rank counts the words found in the title, so title matches come before matches in
    the description, category, shop or origin. None when ``q`` has no words.
    """
    terms = list(dict.fromkeys(q.split()))[:MAX_TERMS]
    if not terms:
        return None
    dialect = session.get_bind().dialect.name
    conditions: list[ColumnElement[bool]] = []
    if dialect == "sqlite":
        long_terms = [t for t in terms if len(t) >= _TRIGRAM]
        if long_terms:
            query = " ".join(_fts_phrase(t) for t in long_terms)  # implicit AND
            matching = select(_fts.c.rowid).where(_fts.c.search_text.op("MATCH")(query))
            conditions.append(Product.id.in_(matching))
        short_terms = [t for t in terms if len(t) < _TRIGRAM]
    else:
        short_terms = terms  # ILIKE over the trigram-indexed column, whatever the length
    conditions += [Product.search_text.ilike(_contains(t), escape="\\") for t in short_terms]
    in_title = [case((Product.title.ilike(_contains(t), escape="\\"), 1), else_=0) for t in terms]
    return and_(*conditions), reduce(operator.add, in_title)
