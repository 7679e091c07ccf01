"""tables.xlsx: the ministry's tables, one sheet each, as a county files them.

Layout of every sheet: row 1 the title, row 2 who and what (填报单位, 统计范围,
units), rows 3–4 the two header rows (group, column), data from row 5, the
合计 rows last, notes below. Numbers are stored as numbers (亩 with
number_format 0.00, ratios as fractions shown as percentages), the header rows
are frozen and repeated on every printed page, and pages are A4 landscape,
fitted to the page width.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter

from pipeline.report_tables import Table

HEADER_ROWS = 4  # title, subtitle, group header, column header
FIRST_DATA_ROW = HEADER_ROWS + 1
NUMBER_FORMAT = {"int": "0", "mu": "0.00", "ratio": "0.00%", "date": "yyyy-mm-dd"}

_thin = Side(style="thin", color="808080")
_BORDER = Border(left=_thin, right=_thin, top=_thin, bottom=_thin)
_HEAD_FILL = PatternFill("solid", fgColor="D9E1F2")
_TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
_FLAG_FILL = PatternFill("solid", fgColor="F8CBAD")
_FONT = "宋体"  # what Excel on a county office's Windows has; the file carries no font


def write_workbook(path: Path, tables: list[Table], unit: str, scope: str) -> None:
    """Write ``tables`` to ``path``; ``unit`` is 填报单位 (the county), ``scope`` the selection."""
    wb = Workbook()
    wb.remove(wb.active)
    for table in tables:
        _sheet(wb, table, unit, scope)
    wb.save(path)


def _sheet(wb: Workbook, t: Table, unit: str, scope: str) -> None:
    ws = wb.create_sheet(t.name[:31])
    ncol = len(t.columns)
    last = get_column_letter(ncol)
    ws.merge_cells(f"A1:{last}1")
    ws["A1"] = t.name
    ws["A1"].font = Font(name="黑体", size=16, bold=True)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 30
    ws.merge_cells(f"A2:{last}2")
    ws["A2"] = f"填报单位：{unit}    统计范围：{scope}    面积单位：亩    数量单位：宗"
    ws["A2"].font = Font(name=_FONT, size=10)

    head = Font(name=_FONT, size=10, bold=True)
    centre = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for i, c in enumerate(t.columns, 1):
        top, bottom = ws.cell(3, i), ws.cell(4, i)
        top.value = c.group if c.group else c.title
        bottom.value = c.title if c.group else None
        for cell in (top, bottom):
            cell.font, cell.alignment, cell.fill, cell.border = head, centre, _HEAD_FILL, _BORDER
    _merge_headers(ws, t)
    ws.row_dimensions[4].height = 32

    # A cell's style depends only on its column, whether it is in a total row and whether
    # its row is flagged. openpyxl hashes every style object on every assignment (most of
    # the workbook's time for thousands of rows), so the first cell of each combination is
    # styled attribute by attribute and the others get a copy of its style ids.
    body, bold = Font(name=_FONT, size=10), Font(name=_FONT, size=10, bold=True)
    aligns = [Alignment(horizontal="right" if c.kind in ("int", "mu", "ratio") else
                        "center" if c.kind in ("flag", "date") else "left", vertical="center") for c in t.columns]
    styled: dict[tuple[bool, int, bool], StyleArray] = {}
    row_no = FIRST_DATA_ROW
    for kind, rows in (("row", t.rows), ("total", t.totals)):
        font = bold if kind == "total" else body
        for values in rows:
            flagged = any(c.kind == "flag" and v for c, v in zip(t.columns, values))
            for i, (c, v) in enumerate(zip(t.columns, values), 1):
                cell = ws.cell(row_no, i, _value(v))
                key = (kind == "total", i, flagged and c.kind in ("ratio", "flag"))
                style = styled.get(key)
                if style is not None:
                    cell._style = StyleArray(style)
                    continue
                cell.border, cell.font, cell.alignment = _BORDER, font, aligns[i - 1]
                if c.kind in NUMBER_FORMAT:
                    cell.number_format = NUMBER_FORMAT[c.kind]
                if kind == "total":
                    cell.fill = _TOTAL_FILL
                if flagged and c.kind in ("ratio", "flag"):
                    cell.fill = _FLAG_FILL
                styled[key] = StyleArray(cell._style)
            row_no += 1
    for note in t.notes:
        ws.merge_cells(start_row=row_no, start_column=1, end_row=row_no, end_column=ncol)
        cell = ws.cell(row_no, 1, f"注：{note}")
        cell.font = Font(name=_FONT, size=9)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[row_no].height = 14 * (1 + len(note) // max(20, int(sum(c.width for c in t.columns) / 2)))
        row_no += 1

    for i, c in enumerate(t.columns, 1):
        ws.column_dimensions[get_column_letter(i)].width = c.width
    ws.freeze_panes = f"{get_column_letter(t.freeze_cols + 1)}{FIRST_DATA_ROW}"
    ws.print_title_rows = f"3:{HEADER_ROWS}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"


def _merge_headers(ws, t: Table) -> None:
    """Span each group over its columns (row 3) and ungrouped titles over both rows."""
    i = 0
    while i < len(t.columns):
        c = t.columns[i]
        if c.group is None:
            ws.merge_cells(start_row=3, start_column=i + 1, end_row=4, end_column=i + 1)
            i += 1
            continue
        j = i
        while j + 1 < len(t.columns) and t.columns[j + 1].group == c.group:
            j += 1
        if j > i:
            ws.merge_cells(start_row=3, start_column=i + 1, end_row=3, end_column=j + 1)
        i = j + 1


def _value(v):
    """Decimals become floats (Excel has no decimal type; 2 decimals survive exactly as displayed)."""
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, date) or v is None or isinstance(v, (int, float, str)):
        return v
    return str(v)
