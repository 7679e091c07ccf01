"""report.pdf: the report's blocks typeset with reportlab, to be printed and filed.

A4 portrait for the report itself, A4 landscape for the attached tables (附表),
page numbers "— n —" at the foot as in Chinese official documents. Text is set
in TrueType fonts embedded as subsets (:mod:`pipeline.fonts`): 黑体-style for
the title, headings, tables and captions, 宋体-style for body text. reportlab
draws a missing glyph as an empty box without a word, so every string is
checked against its font first and the characters it lacks are returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (BaseDocTemplate, CondPageBreak, Frame, Image, KeepTogether, NextPageTemplate,
                                PageBreak, PageTemplate, Paragraph, Spacer, Table as RLTable, TableStyle)

from reportlab.lib import textsplit as _rl_textsplit
from reportlab.platypus import paragraph as _rl_paragraph

from pipeline import fonts
from pipeline import report_doc as doc
from pipeline.report_md import cell
from pipeline.report_tables import Table

# reportlab's CJK line breaker hangs the punctuation that may not start a line in the
# margin, but its list has the Japanese marks only; add the full-width Chinese ones, so
# "（其中：耕地" never breaks before "：". Both line breakers read the list at run time.
for _module in (_rl_textsplit, _rl_paragraph):
    _module.ALL_CANNOT_START += "".join(ch for ch in "，：；！？" if ch not in _module.ALL_CANNOT_START)

MARGIN = 2.2 * cm
HEAD_BG = colors.HexColor("#D9E1F2")
TOTAL_BG = colors.HexColor("#F2F2F2")
FLAG_FG = colors.HexColor("#B22222")


@dataclass
class _Typesetter:
    hei: str
    song: str
    hei_font: fonts.Font
    song_font: fonts.Font
    missing: set[str] = field(default_factory=set)

    def check(self, text: str, font: str) -> str:
        f = self.hei_font if font == self.hei else self.song_font
        self.missing |= fonts.missing_glyphs(f, text)
        return text

    def style(self, name: str, **kw) -> ParagraphStyle:
        base = dict(fontName=self.song, fontSize=12, leading=21, wordWrap="CJK")
        base.update(kw)
        return ParagraphStyle(name, **base)

    def para(self, text: str, style: ParagraphStyle) -> Paragraph:
        return Paragraph(escape(self.check(text, style.fontName)), style)


def write(path: Path, blocks: list, folder: Path, title: str) -> set[str]:
    """Typeset ``blocks`` (figures read from ``folder``) into ``path``; return missing glyphs."""
    hei_font, song_font = fonts.sans(), fonts.serif()
    ts = _Typesetter(fonts.register_reportlab(hei_font), fonts.register_reportlab(song_font), hei_font, song_font)
    styles = {
        "title": ts.style("title", fontName=ts.hei, fontSize=20, leading=30, alignment=TA_CENTER, spaceAfter=6),
        "subtitle": ts.style("subtitle", fontSize=10.5, leading=16, alignment=TA_CENTER,
                             textColor=colors.HexColor("#444444"), spaceAfter=14),
        "heading": ts.style("heading", fontName=ts.hei, fontSize=15, leading=24, spaceBefore=10, spaceAfter=4),
        "body": ts.style("body", firstLineIndent=24, spaceAfter=3),
        "line": ts.style("line", firstLineIndent=24, spaceAfter=1),
        "bullet": ts.style("bullet", fontSize=10.5, leading=17, leftIndent=14, bulletIndent=2,
                           bulletFontName=ts.song),
        "caption": ts.style("caption", fontName=ts.hei, fontSize=10.5, leading=16, alignment=TA_CENTER,
                            spaceBefore=3, spaceAfter=8),
        "note": ts.style("note", fontSize=8.5, leading=12, spaceBefore=3),
        "cell_head": ts.style("cell_head", fontName=ts.hei, fontSize=8, leading=10, alignment=TA_CENTER),
        "cell": ts.style("cell", fontName=ts.hei, fontSize=8, leading=10),
    }
    portrait_w = A4[0] - 2 * MARGIN
    land_w = landscape(A4)[0] - 2 * MARGIN

    story: list = []
    in_landscape = False
    for b in blocks:
        if isinstance(b, doc.Title):
            st = styles["title"]
            one_line = stringWidth(b.text, st.fontName, st.fontSize) <= portrait_w - 12
            story.append(Spacer(1, 0.4 * cm))
            story += [ts.para(t, st) for t in ([b.text] if one_line or not b.lines else b.lines)]
            story.append(ts.para(b.subtitle, styles["subtitle"]))
        elif isinstance(b, doc.Heading):
            story += [CondPageBreak(3 * cm), ts.para(b.text, styles["heading"])]
        elif isinstance(b, doc.Para):
            story.append(ts.para(b.text, styles["body" if b.indent else "line"]))
        elif isinstance(b, doc.Bullet):
            story.append(Paragraph(escape(ts.check(b.text, ts.song)), styles["bullet"],
                                   bulletText=ts.check("•", ts.song)))
        elif isinstance(b, doc.Figure):
            story.append(_figure(ts, folder / b.path, b.caption, portrait_w, styles))
        elif isinstance(b, doc.TableBlock):
            if b.landscape:
                story += [NextPageTemplate("landscape"), PageBreak()]
                in_landscape = True
            width = land_w if in_landscape else portrait_w
            head = [ts.para(b.caption, styles["caption"]), _table(ts, b.table, width, styles)]
            # a short table stays with its caption; a long one flows on, its header repeated
            story += [KeepTogether(head)] if len(b.table.rows) < 25 else head
            story += [ts.para(f"注：{n}", styles["note"]) for n in b.table.notes] + [Spacer(1, 0.3 * cm)]

    document = BaseDocTemplate(str(path), pagesize=A4, title=title, author="weipian", creator="weipian",
                               subject="土地卫片执法检查汇总分析报告", initialFontName=ts.song, invariant=1,
                               leftMargin=MARGIN, rightMargin=MARGIN,
                               topMargin=MARGIN, bottomMargin=MARGIN)
    document.addPageTemplates([
        PageTemplate("portrait", [Frame(MARGIN, MARGIN, portrait_w, A4[1] - 2 * MARGIN, id="p")],
                     onPage=_footer(ts), pagesize=A4),
        PageTemplate("landscape", [Frame(MARGIN, MARGIN * 0.8, land_w, landscape(A4)[1] - 1.8 * MARGIN, id="l")],
                     onPage=_footer(ts), pagesize=landscape(A4)),
    ])
    # Streams binary (Flate only), not also ASCII85 text: the same pages, a sixth smaller,
    # and without reportlab's pure-Python ASCII85 encoder (a fifth of the PDF's time).
    a85, rl_config.useA85 = rl_config.useA85, 0
    try:
        document.build(story)
    finally:
        rl_config.useA85 = a85
    return ts.missing


def _footer(ts: _Typesetter):
    def draw(canvas, document):
        canvas.saveState()
        canvas.setFont(ts.song, 10.5)
        w = canvas._pagesize[0]
        canvas.drawCentredString(w / 2, 1.1 * cm, ts.check(f"— {document.page} —", ts.song))
        canvas.restoreState()
    return draw


def _figure(ts: _Typesetter, png: Path, caption: str, width: float, styles) -> KeepTogether:
    iw, ih = ImageReader(str(png)).getSize()
    w = width * 0.96
    h = w * ih / iw
    if h > 15 * cm:  # leave room for the caption on a portrait page
        h = 15 * cm
        w = h * iw / ih
    return KeepTogether([Spacer(1, 0.2 * cm), Image(str(png), width=w, height=h), ts.para(caption, styles["caption"])])


def _table(ts: _Typesetter, t: Table, width: float, styles) -> RLTable:
    cols = t.columns
    grouped = any(c.group for c in cols)
    head_top = [ts.para(c.group or c.title, styles["cell_head"]) for c in cols]
    head_bottom = [ts.para(c.title, styles["cell_head"]) if c.group else "" for c in cols]
    data = [head_top] + ([head_bottom] if grouped else [])
    nhead = len(data)
    body_rows = t.rows + t.totals
    weights = [max(c.width, 5.0) for c in cols]
    widths = [w * width / sum(weights) for w in weights]
    block_starts = []
    for r, row in enumerate(body_rows):
        cells = []
        new_block = r == 0 or row[:t.block_cols] != body_rows[r - 1][:t.block_cols] or r >= len(t.rows)
        if t.block_cols and new_block and r:
            block_starts.append(nhead + r)
        for i, (c, v) in enumerate(zip(cols, row)):
            text = cell(c.kind, v).replace("⚠ ", "")
            if i < t.block_cols and not new_block:
                text = ""  # printed once per block of the same township
            ts.check(text, ts.hei)
            fits = stringWidth(text, ts.hei, 8) <= widths[i] - 6
            cells.append(text if fits else ts.para(text, styles["cell"]))
        data.append(cells)
    table = RLTable(data, colWidths=widths, repeatRows=nhead)
    style = [
        ("FONT", (0, 0), (-1, -1), ts.hei, 8),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#808080")),
        ("BACKGROUND", (0, 0), (-1, nhead - 1), HEAD_BG),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    for i, c in enumerate(cols):
        if c.kind in ("int", "mu", "ratio"):
            style.append(("ALIGN", (i, nhead), (i, -1), "RIGHT"))
        elif c.kind in ("flag", "date"):
            style.append(("ALIGN", (i, nhead), (i, -1), "CENTER"))
        if grouped and not c.group:
            style.append(("SPAN", (i, 0), (i, 1)))
    if grouped:
        i = 0
        while i < len(cols):
            j = i
            while cols[i].group and j + 1 < len(cols) and cols[j + 1].group == cols[i].group:
                j += 1
            if j > i:
                style.append(("SPAN", (i, 0), (j, 0)))
            i = j + 1
    style += [("LINEABOVE", (0, r), (-1, r), 1.0, colors.HexColor("#404040")) for r in block_starts]
    first_total = nhead + len(t.rows)
    if t.totals:
        style += [("BACKGROUND", (0, first_total), (-1, -1), TOTAL_BG)]
    for r, row in enumerate(body_rows, nhead):
        if any(c.kind == "flag" and v for c, v in zip(cols, row)):
            for i, c in enumerate(cols):
                if c.kind in ("ratio", "flag"):
                    style.append(("TEXTCOLOR", (i, r), (i, r), FLAG_FG))
    table.setStyle(TableStyle(style))
    return table
