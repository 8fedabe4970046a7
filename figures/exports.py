"""The figures as an Excel workbook: one sheet per table, numbers as numbers, text never run as a formula."""

import io
import re

from openpyxl import Workbook
from openpyxl.styles import Font

FORBIDDEN = re.compile(r"[\[\]:*?/\\]")  # characters a sheet's name may not hold


def workbook_bytes(tables, now_label: str, before_label: str) -> bytes:
    book = Workbook()
    book.remove(book.active)
    used = set()
    for table in tables:
        title = FORBIDDEN.sub(" ", table.title)[:31].strip()
        while title in used:  # the names must differ (31 characters can cut two titles alike)
            title = title[:28] + f" {len(used)}"
        used.add(title)
        sheet = book.create_sheet(title)
        sheet.append([table.label, now_label, before_label])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for label, now, before in table.rows:
            sheet.append([label, now, before])
            sheet.cell(sheet.max_row, 1).data_type = "s"  # a title such as "=1+1" stays text
        sheet.column_dimensions["A"].width = max([len(table.label)] + [len(str(r[0])) for r in table.rows]) + 2
        for column in ("B", "C"):
            sheet.column_dimensions[column].width = 14
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
