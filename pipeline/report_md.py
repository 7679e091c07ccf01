"""report.md: the report's blocks as Markdown (GitHub / Typora / any editor).

Pipe tables have one header row, so a grouped column reads ``违法用地·面积``.
Numbered lines are kept for the narrative alone (other lists use ``-``), so a
script can find the ranked township lines as seed 004 writes them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pipeline import report_doc as doc
from pipeline.report_tables import Table, ratio_text


def render(blocks: list) -> str:
    md: list[str] = []
    for b in blocks:
        if isinstance(b, doc.Title):
            md += [f"# {b.text}", "", b.subtitle, ""]
        elif isinstance(b, doc.Heading):
            md += [f"## {b.text}", ""]
        elif isinstance(b, doc.Para):
            md += [b.text, ""]
        elif isinstance(b, doc.Bullet):
            md.append(f"- {b.text}")
        elif isinstance(b, doc.Figure):
            md += [f"![{b.caption}]({b.path.as_posix()})", "", f"*{b.caption}*", ""]
        elif isinstance(b, doc.TableBlock):
            if md and md[-1].startswith("- "):
                md.append("")
            md += [f"### {b.caption}", ""] + table(b.table) + [""]
    if md and md[-1] != "":
        md.append("")
    return "\n".join(md)


def table(t: Table) -> list[str]:
    heads = [f"{c.group}·{c.title}" if c.group else c.title for c in t.columns]
    out = ["| " + " | ".join(heads) + " |",
           "|" + "|".join("---:" if c.kind in ("int", "mu", "ratio") else "---" for c in t.columns) + "|"]
    for row in t.rows:
        out.append("| " + " | ".join(cell(c.kind, v) for c, v in zip(t.columns, row)) + " |")
    for row in t.totals:
        out.append("| " + " | ".join(_bold(cell(c.kind, v)) for c, v in zip(t.columns, row)) + " |")
    out += [""] + [f"注：{n}" for n in t.notes] if t.notes else []
    return out


def cell(kind: str, v) -> str:
    if v is None:
        return ""
    if kind == "mu":
        return f"{Decimal(v):.2f}"
    if kind == "ratio":
        return ratio_text(v)
    if kind == "flag":
        return "⚠ 是" if v else ""
    if isinstance(v, date):
        return v.isoformat()
    return str(v).replace("|", "\\|")


def _bold(s: str) -> str:
    return f"**{s}**" if s else ""
