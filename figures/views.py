"""The staff page of figures for a period, and its tables as files for German Excel."""

from flask import Blueprint, Response, abort, render_template, request

from core.csv_export import csv_bytes
from core.i18n import local_today
from core.models import utcnow
from core.security import staff_required
from figures.charts import bar_chart
from figures.exports import workbook_bytes
from figures.period import Period
from figures.report import CHARTED, ORDER, tables

bp = Blueprint("figures", __name__, url_prefix="/figures")


@bp.get("/")
@staff_required
def index():
    """Figures of a period (this calendar year unless asked otherwise), beside those of the period before."""
    period, errors = Period.from_args(request.args, local_today())
    return render_template("figures/index.html", period=period, before=period.previous(), errors=errors,
                           tables=tables(period, utcnow()), today=local_today(), charted=CHARTED,
                           bar_chart=bar_chart)


@bp.get("/<key>.csv")
@staff_required
def table_csv(key: str):
    """One table of the page as a CSV file for German Excel."""
    if key not in ORDER:
        abort(404)
    period, _errors = Period.from_args(request.args, local_today())
    table = next(t for t in tables(period, utcnow()) if t.key == key)
    body = csv_bytes([table.label, period.label, period.previous().label],
                     [[label, now, before] for label, now, before in table.rows])
    name = f"{key}-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    return Response(body, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/figures.xlsx")
@staff_required
def workbook():
    """Every table of the page in one workbook, a sheet each."""
    period, _errors = Period.from_args(request.args, local_today())
    body = workbook_bytes(tables(period, utcnow()), period.label, period.previous().label)
    name = f"figures-{period.start.isoformat()}-{period.end.isoformat()}.xlsx"
    return Response(body, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

