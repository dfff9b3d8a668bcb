"""A statement as CSV and PDF downloads, in the reader's language.

CSV is UTF-8 with a byte-order mark (Excel and WPS need it for Chinese), the summary first
and then every posting; amounts in yuan with two decimals, as the pages show them without the
sign of the currency. PDF is drawn by ``logistics.pdf`` on A4.
"""

import csv
import io

from originlive.ledger.accounts import Holder
from originlive.ledger.models import EntryKind
from originlive.ledger.statements.service import BUCKETS, Statement
from originlive.logistics.pdf import Column, Sheet
from originlive.web.templating import N_, local
from originlive.web.templating import gettext as _

KINDS = {
    EntryKind.CAPTURE: N_("Sales paid"),
    EntryKind.RELEASE: N_("Released"),
    EntryKind.REFUND: N_("Refunds"),
    EntryKind.COMMISSION: N_("Commission"),
    EntryKind.PAYOUT: N_("Payouts"),
    EntryKind.REVERSAL: N_("Failed payouts given back"),
    EntryKind.ADJUSTMENT: N_("Adjustments"),
}
BUCKET_NAMES = {"pending": N_("Pending"), "available": N_("Available")}
HOLDERS = {Holder.SHOP: N_("Shop"), Holder.ANCHOR: N_("Anchor")}


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals, without a currency sign: -1250 → -12.50."""
    whole, part = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{part:02d}"


def title(statement: Statement, name: str) -> str:
    """The statement's heading: "Statement 2026-11 · Shop 12 青山果园"."""
    holder = _(HOLDERS.get(statement.holder, N_("Account")))
    return f"{_('Statement')} {statement.month} · {holder} {statement.holder_id} {name}"


def summary(statement: Statement) -> list[list[str]]:
    """The summary's rows: opening, each kind of movement, closing, by account."""
    rows = [[_("Opening balance"), *(yuan(statement.opening[b]) for b in BUCKETS)]]
    for kind, label in KINDS.items():
        moved = statement.moved.get(kind)
        if moved:
            rows.append([_(label), *(yuan(moved.get(b, 0)) for b in BUCKETS)])
    rows.append([_("Closing balance"), *(yuan(statement.closing[b]) for b in BUCKETS)])
    return rows


def _line_rows(statement: Statement) -> list[list[str]]:
    kinds = {kind: _(label) for kind, label in KINDS.items()}
    return [
        [
            local(line.at),
            kinds[line.kind],
            line.ref,
            _(BUCKET_NAMES[line.account.rsplit(":", 1)[1]]),
            yuan(line.amount_fen),
        ]
        for line in statement.lines
    ]


def _line_header() -> list[str]:
    return [_("Time"), _("Kind"), _("Reference"), _("Account"), _("Amount (yuan)")]


def _summary_header() -> list[str]:
    return [_("Summary"), *(_(BUCKET_NAMES[b]) for b in BUCKETS)]


def statement_csv(statement: Statement, name: str) -> bytes:
    """The statement as one CSV file: its title, summary, then its postings."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_safe(title(statement, name))])
    writer.writerow(_summary_header())
    writer.writerows(summary(statement))
    writer.writerow([])
    writer.writerow(_line_header())
    writer.writerows([[_safe(cell) for cell in row] for row in _line_rows(statement)])
    return out.getvalue().encode("utf-8-sig")


def _safe(cell: str) -> str:
    # A shop's name or a reference starting with = + - @ would be a formula to a spreadsheet.
    return "'" + cell if cell[:1] in ("=", "+", "@") else cell


# Each column's share of the line, and whether it is a number (set flush right).
SUMMARY_WIDTHS = ((0.5, False), (0.25, True), (0.25, True))
LINE_WIDTHS = ((0.2, False), (0.2, False), (0.25, False), (0.15, False), (0.2, True))


def _columns(labels: list[str], widths: tuple[tuple[float, bool], ...]) -> list[Column]:
    return [Column(label, w, right) for label, (w, right) in zip(labels, widths, strict=True)]


def statement_pdf(statement: Statement, name: str, *, font: str) -> bytes:
    """The statement on A4: title, summary, then its postings."""
    heading = title(statement, name)
    sheet = Sheet(paper="a4", footer=heading, font=font)
    sheet.line(heading, size=13)
    span = f"{local(statement.month.start, '%Y-%m-%d')} – {local(statement.month.end, '%Y-%m-%d')}"
    sheet.line(span)
    sheet.gap()
    summary_header, line_header = _summary_header(), _line_header()
    sheet.table(_columns(summary_header, SUMMARY_WIDTHS), summary(statement))
    sheet.gap()
    sheet.table(_columns(line_header, LINE_WIDTHS), _line_rows(statement))
    return sheet.finish()
