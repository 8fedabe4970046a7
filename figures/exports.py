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
        name = FORBIDDEN.sub(" ", table.title).strip(" '")[:31].rstrip(" '")
        counter = 1
        while name.casefold() in used:  # Excel tells sheet names apart regardless of case
            counter += 1
            name = name[:31 - len(str(counter)) - 1].rstrip(" '") + f" {counter}"
        used.add(name.casefold())
        sheet = book.create_sheet(name)
        sheet.append([table.title])  # the whole title: a sheet's name holds 31 characters
        sheet.cell(1, 1).font = Font(bold=True)
        sheet.cell(1, 1).data_type = "s"
        sheet.append([table.label, now_label, before_label])
        for cell in sheet[2]:
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
