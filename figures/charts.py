"""Bar charts of the figures, drawn on the server as SVG: no script, nothing from another host, sharp in
print, in the page's language. Our own few lines rather than a chart library: a library's SVG brings
its own script and styles for tooltips, and its text alternative is not what a screen reader needs.
Each chart is an image named by its title, with a description that points to its numbers, which the
data table beside it holds (what a screen reader reads, and what axe checks)."""

from markupsafe import Markup, escape

from core.i18n import format_number

WIDTH, LABEL, BAR, ROW, TOP = 640, 210, 12, 34, 34
NOW_COLOUR, BEFORE_COLOUR = "#0b5563", "#5b8f99"  # the site's petrol, and a lighter tint (3:1 on white)


def bar_chart(chart_id: str, title: str, description: str, rows, now_label: str, before_label: str) -> Markup:
    """Horizontal bars, two per row (this period dark, the period before light), each with its number."""
    peak = max([max(now, before or 0) for _label, now, before in rows] + [1])
    room = WIDTH - LABEL - 60
    height = TOP + ROW * len(rows) + 4
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        _legend(0, NOW_COLOUR, now_label), _legend(160, BEFORE_COLOUR, before_label),
    ]
    for index, (label, now, before) in enumerate(rows):
        y = TOP + index * ROW
        short = label if len(label) <= 30 else label[:29] + "…"
        whole = f"<title>{escape(label)}</title>" if short != label else ""  # the whole name, on hover
        parts.append(f'<text x="0" y="{y + 17}" font-size="13">{whole}{escape(short)}</text>')
        bars = ((0, now, NOW_COLOUR),) + (((BAR + 2, before, BEFORE_COLOUR),) if before is not None else ())
        for offset, value, colour in bars:
            length = round(room * value / peak, 1)
            parts.append(f'<rect x="{LABEL}" y="{y + offset}" width="{length}" height="{BAR}" fill="{colour}"/>')
            parts.append(f'<text x="{LABEL + length + 4}" y="{y + offset + 10}" font-size="11">'
                         f'{escape(format_number(value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(x: int, colour: str, label: str) -> str:
    return (f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 18}" y="15" font-size="13">{escape(label)}</text>')
