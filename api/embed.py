"""The programme for other sites: ``/embed/programme``, a compact page made for an iframe on the centre's
own website (or a partner's intranet), and the staff page with the snippet to paste.

Only the origins in ``EMBED_ORIGINS`` may frame it (CSP ``frame-ancestors``; every other page keeps
refusing frames, ``core.security``). It reads no session and sets no cookie (``api.http.SessionInterface``:
in a frame on another site the visitor's cookies are third-party anyway), asks nothing of the visitor's
browser but the page, its stylesheet and one small script that tells the host page its height
(``static/js/embed.js``, ``postMessage``); the host page's script (``static/js/embed-host.js``) sizes the
iframe. Registration stays on Fundus: each training opens there in a new tab.
"""

from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from markupsafe import escape

from api.http import EMBED_PREFIX
from core.extensions import db
from core.pagecache import kept_whole
from core.security import framable_by, staff_required
from core.urls import external_url
from core.vocabulary import TargetGroup
from events import trainings
from events.models import TrainingFormat
from events.registrations import programme_entries
from events.views import programme_filters

bp = Blueprint("embed", __name__, url_prefix=EMBED_PREFIX)
staff_bp = Blueprint("embed_staff", __name__, url_prefix="/staff/embed")

SHOWN = 10  # trainings in the embedded list; the link below it leads to the whole programme


def embed_filters() -> dict:
    """The programme page's filters (``events.views.programme_filters``: a value that is not one of them is
    no filter) as URL values, plus the language of the frame."""
    group, fmt, first_day = programme_filters()
    lang = request.args.get("lang", "")
    return {"target_group": group.value if group else None, "format": fmt.value if fmt else None,
            "month": f"{first_day:%Y-%m}" if first_day else None,
            "lang": lang if lang in current_app.config["LANGUAGES"] else None}


@bp.get("/programme")
@kept_whole
def programme():
    """The coming trainings, compact, for an iframe on another site."""
    chosen = embed_filters()
    page = db.paginate(trainings.programme(*programme_filters()), page=1, per_page=SHOWN, error_out=False)
    listed = programme_entries(page.items)
    filters = {k: v for k, v in chosen.items() if v}  # the links keep the list's language (?lang=)
    response = current_app.make_response(render_template(
        "embed/programme.html", listed=listed, more=page.total > SHOWN, total=page.total, lang=chosen["lang"],
        programme_url=external_url("events.programme", **filters)))
    response.headers["Content-Security-Policy"] = framable_by(embed_origins())
    response.cache_control.public = True
    response.cache_control.max_age = 60
    return response


def embed_origins() -> list[str]:
    """``EMBED_ORIGINS`` as a list (checked at start-up by ``core.config``)."""
    return [o for o in current_app.config["EMBED_ORIGINS"].split(",") if o]


@staff_bp.get("/")
@staff_required
def snippet():
    """The code to paste into the website, for the filters chosen, with a preview."""
    chosen = embed_filters()
    frame_url = external_url("embed.programme", **{k: v for k, v in chosen.items() if v})
    with force_locale(chosen["lang"] or str(get_locale())):  # the frame's title in the list's language
        title = _("Trainings of %(org)s", org=current_app.config["ORG_NAME"])
    # Escaped once here for the HTML people paste, and once more by the template that shows it as text.
    code = (f'<iframe src="{escape(frame_url)}" title="{escape(title)}" data-fundus-embed loading="lazy" '
            f'style="width: 100%; height: 30rem; border: 0"></iframe>\n'
            f'<script src="{escape(external_url("static", filename="js/embed-host.js"))}" defer></script>')
    # The preview in the list's language, else in the page's (not in the staff member's browser's).
    preview = url_for("embed.programme", **{k: v for k, v in chosen.items() if v} | {"lang": chosen["lang"]
                                                                                       or str(get_locale())})
    return render_template("embed/snippet.html", chosen=chosen, code=code, preview_url=preview,
                           origins=embed_origins(), target_groups=list(TargetGroup), formats=list(TrainingFormat))
