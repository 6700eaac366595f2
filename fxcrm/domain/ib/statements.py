"""An IB's period statement: every per-trade line, the period rules, and totals that are the sums
of those lines. Rendered as CSV and as a text-only PDF (PDF 1.4, Helvetica, A4), with no
dependency: the writer below lays out lines of text and the cross-reference table.

Pure: the caller streams the lines from the database (statements are regenerated on demand from
the immutable accrual rows and the settlement row, so what is shown is always what was paid).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from fxcrm.domain.ib.settlement import ZERO, PeriodLine
from fxcrm.domain.money_text import amount_text

HEADER = ["section", "deal", "client", "symbol", "lots", "rule", "level", "amount", "explanation"]


@dataclass(frozen=True)
class TradeLine:
    deal: str  # the platform's deal id (server:deal)
    client: str  # masked
    symbol: str
    lots: Decimal
    rule: str
    level: int
    amount: Decimal
    explanation: dict[str, object]


@dataclass(frozen=True)
class StatementHead:
    brand: str
    ib_id: str
    ib_name: str
    period: str
    currency: str
    status: str
    carried_in: Decimal
    payable: Decimal
    carried_out: Decimal
    plan: dict[str, object]  # the period rules of the plan (revshare, CPA, tiers)


@dataclass
class Totals:
    trades: Decimal = ZERO
    trade_count: int = 0
    period_rules: Decimal = ZERO


def _explain(data: Mapping[str, object]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def statement_rows(
    head: StatementHead, trades: Iterable[TradeLine], period: list[PeriodLine]
) -> Iterator[list[str]]:
    """The statement's rows, header first; totals are summed from the lines as they pass."""
    totals = Totals()
    yield HEADER
    yield ["info", "", "", "", "", "ib", "", "", f"{head.ib_name} ({head.ib_id})"]
    yield ["info", "", "", "", "", "period", "", "", f"{head.period} {head.currency}"]
    yield ["info", "", "", "", "", "plan_period_rules", "", "", _explain(head.plan)]
    for line in trades:
        totals.trades += line.amount
        totals.trade_count += 1
        yield [
            "trade",
            line.deal,
            line.client,
            line.symbol,
            amount_text(line.lots),
            line.rule,
            str(line.level),
            amount_text(line.amount),
            _explain(line.explanation),
        ]
    for rule in period:
        totals.period_rules += rule.amount
        yield [
            "period_rule",
            "",
            rule.trader_id or "",
            "",
            "",
            rule.rule,
            "",
            amount_text(rule.amount),
            _explain(rule.explanation),
        ]
    total = totals.trades + totals.period_rules + head.carried_in
    for name, amount in (
        (f"trades_total ({totals.trade_count} lines)", totals.trades),
        ("period_rules_total", totals.period_rules),
        ("carried_in", head.carried_in),
        ("total", total),
        (f"payable ({head.status}; rounded down to the {head.currency} minor unit)", head.payable),
        ("carried_out", head.carried_out),
    ):
        yield ["total", "", "", "", "", name, "", amount_text(amount), ""]


def render_csv(rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def text_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """The rows as readable lines for the PDF (the CSV is the machine-readable form)."""
    for row in rows:
        section = row[0]
        if section == "section":
            continue
        if section == "info":
            yield f"{row[5]}: {row[8]}"
        elif section == "trade":
            yield (
                f"{row[1]}  {row[2]}  {row[3]}  {row[4]} lots  {row[5]} L{row[6]}  {row[7]}"
                f"  {row[8]}"
            )
        elif section == "period_rule":
            yield f"{row[5]}  {row[2]}  {row[7]}  {row[8]}"
        else:
            yield f"{row[5]}: {row[7]}"


# ---------------------------------------------------------------- a minimal PDF writer

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN, FONT_SIZE, LEADING = 40, 8, 11
LINES_PER_PAGE = (PAGE_HEIGHT - 2 * MARGIN) // LEADING
MAX_CHARS = 125  # Helvetica 8 pt across the page; longer lines are wrapped


def _pdf_text(text: str) -> bytes:
    latin = text.encode("latin-1", "replace")
    return latin.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _wrapped(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        while len(line) > MAX_CHARS:
            yield line[:MAX_CHARS]
            line = "    " + line[MAX_CHARS:]
        yield line


def render_pdf(title: str, lines: Iterable[str]) -> bytes:
    """A valid PDF 1.4 document: `title` on every page, then the lines, paginated."""
    pages: list[list[str]] = [[]]
    for line in _wrapped(lines):
        if len(pages[-1]) >= LINES_PER_PAGE - 2:
            pages.append([])
        pages[-1].append(line)
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled once the page tree's number is known
    tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for number, page in enumerate(pages, start=1):
        heading = f"{title}   page {number}/{len(pages)}"
        text = [b"BT", b"/F1 %d Tf" % FONT_SIZE, b"%d TL" % LEADING]
        text.append(b"%d %d Td" % (MARGIN, PAGE_HEIGHT - MARGIN))
        text.append(b"(" + _pdf_text(heading) + b") Tj T* T*")
        text += [b"(" + _pdf_text(line) + b") Tj T*" for line in page]
        text.append(b"ET")
        stream = b"\n".join(text)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (tree, PAGE_WIDTH, PAGE_HEIGHT, font, content)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        xref,
    )
    return bytes(out)
