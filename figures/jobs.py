"""Periodic work of the figures, run by ``flask --app app jobs run``."""

from core.db import reading_only
from core.i18n import local_today
from core.jobs import job
from core.models import utcnow
from core.pagecache import forget_shared_values
from figures.period import Period
from figures.report import kept_figures


@job("figures")
def count_ahead() -> str:
    """The current year's figures (the page's first view) counted ahead if anything changed, so the first person
    to look after a quiet while does not wait for them; shared values older than a day removed."""
    forgotten = forget_shared_values()
    with reading_only():  # SQLite: no write lock held while counting
        kept_figures(Period.from_args({}, local_today())[0], utcnow())
    return f"this year's figures counted ahead, {forgotten} old values removed"
