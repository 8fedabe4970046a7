"""Staff pages of the accounts feature: partner organisations with their contacts, and the
applications for partner accounts."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from accounts.applications import approve_application, matching_organisation, reject_application
from accounts.audit_log import history
from accounts.forms import ApproveForm, ContactForm, OrganisationForm, RejectForm
from accounts.models import AccountApplication, ApplicationStatus, Organisation, OrganisationKind, Role, User
from accounts.organisations import organisation_for, save_organisation
from accounts.users import create_user
from accounts.views import bp, organisation_choices
from core.bounds import page_number
from core.errors import action, flash_form_errors, shown_at
from core.extensions import db
from core.security import staff_required


@bp.get("/organisation")
@login_required
def my_organisation():
    """A partner's own organisation and its contact persons."""
    if current_user.organisation_id is None:
        abort(404)
    return redirect(url_for("accounts.organisation_detail", organisation_id=current_user.organisation_id))


@bp.get("/staff/organisations")
@staff_required
def organisations():
    """All partner organisations, searchable by name and city, filterable by kind."""
    q = request.args.get("q", "").strip()[:200]
    kind = request.args.get("kind", "")
    query = select(Organisation).order_by(Organisation.name)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(func.lower(Organisation.name).like(pattern), func.lower(Organisation.city).like(pattern))
        )
    if kind in {k.value for k in OrganisationKind}:
        query = query.where(Organisation.kind == OrganisationKind(kind))
    page = db.paginate(query, per_page=50, error_out=False, page=page_number())
    counts = dict(
        db.session.execute(
            select(User.organisation_id, func.count()).where(User.organisation_id.is_not(None))
            .group_by(User.organisation_id)
        ).all()
    )
    return render_template(
        "accounts/organisations.html", page=page, q=q, kind=kind, kinds=list(OrganisationKind), counts=counts
    )


@bp.route("/staff/organisations/new", methods=["GET", "POST"])
@staff_required
def organisation_new():
    """Create a partner organisation."""
    form = OrganisationForm()
    if form.validate_on_submit():
        with shown_at(form):
            org = save_organisation(None, current_user, **_organisation_fields(form))
            flash(_("Organisation “%(name)s” created.", name=org.name), "success")
            return redirect(url_for("accounts.organisation_detail", organisation_id=org.id))
    return render_template("accounts/organisation_form.html", form=form, org=None)


@bp.route("/staff/organisations/<int:organisation_id>/edit", methods=["GET", "POST"])
@staff_required
def organisation_edit(organisation_id: int):
    """Edit a partner organisation."""
    org = db.get_or_404(Organisation, organisation_id)
    form = OrganisationForm(obj=org)
    if form.validate_on_submit():
        with shown_at(form):
            save_organisation(org.id, current_user, **_organisation_fields(form))
            flash(_("Organisation saved."), "success")
            return redirect(url_for("accounts.organisation_detail", organisation_id=org.id))
    return render_template("accounts/organisation_form.html", form=form, org=org)


def _organisation_fields(form: OrganisationForm) -> dict:
    fields = {name: getattr(form, name).data or "" for name in
              ("name", "street", "postcode", "city", "phone", "email", "notes")}
    fields["kind"] = OrganisationKind(form.kind.data)
    return fields


@bp.route("/organisations/<int:organisation_id>", methods=["GET", "POST"])
@login_required
def organisation_detail(organisation_id: int):
    """An organisation with its contacts; staff can add a contact here."""
    org = organisation_for(current_user, organisation_id)
    form = ContactForm() if current_user.is_staff else None
    if request.method == "POST" and form is None:
        abort(403)
    if form is not None and form.validate_on_submit():
        with shown_at(form):
            user = create_user(form.email.data, form.name.data, Role.PARTNER, current_user, organisation_id=org.id,
                               locale=form.locale.data)
            flash(_("%(name)s added; the invitation is on its way.", name=user.name), "success")
            return redirect(url_for("accounts.organisation_detail", organisation_id=org.id))
    return render_template("accounts/organisation_detail.html", org=org, form=form,
                           history=history("organisation", org.id) if current_user.is_staff else [])


# Staff: account applications ----------------------------------------------------------


@bp.get("/staff/applications")
@staff_required
def applications():
    """Applications for partner accounts: open ones first, then the last decided."""
    pending = db.session.scalars(
        select(AccountApplication)
        .where(AccountApplication.status == ApplicationStatus.PENDING)
        .options(selectinload(AccountApplication.organisation))
        .order_by(AccountApplication.created_at)
    ).all()
    decided = db.session.scalars(
        select(AccountApplication)
        .where(AccountApplication.status != ApplicationStatus.PENDING)
        .options(selectinload(AccountApplication.organisation), selectinload(AccountApplication.decided_by))
        .order_by(AccountApplication.decided_at.desc())
        .limit(50)
    ).all()
    return render_template("accounts/applications.html", pending=pending, decided=decided)


@bp.get("/staff/applications/<int:application_id>")
@staff_required
def application_detail(application_id: int):
    """One application with the forms to approve or reject it."""
    application = db.get_or_404(AccountApplication, application_id)
    # The applicant typed the organisation's name; an organisation of that name is chosen for staff to confirm.
    match = matching_organisation(application) if application.organisation_id is None else None
    approve_form = ApproveForm(organisation_id=application.organisation_id or (match.id if match else 0))
    approve_form.organisation_id.choices = organisation_choices(_("— create a new organisation —"))
    return render_template(
        "accounts/application_detail.html", application=application,
        approve_form=approve_form, reject_form=RejectForm(),
    )


def _application_page(application_id: int) -> str:
    return url_for("accounts.application_detail", application_id=application_id)


@bp.post("/staff/applications/<int:application_id>/approve")
@staff_required
@action(_application_page)
def application_approve(application_id: int):
    """Approve: create the partner account and send the set-password link."""
    db.get_or_404(AccountApplication, application_id)
    form = ApproveForm()
    form.organisation_id.choices = organisation_choices("")
    if not form.validate_on_submit():
        problems = [f"{form[name].label.text}: {message}" for name, messages in form.errors.items()
                    if name in form for message in messages]
        flash(" ".join([_("Please check the form."), *problems]), "error")
        return None
    user = approve_application(application_id, current_user, form.organisation_id.data,
                               OrganisationKind(form.new_kind.data) if form.new_kind.data else None)
    flash(_("Approved. %(name)s gets an e-mail with a link to set a password.", name=user.name), "success")
    return redirect(url_for("accounts.applications"))


@bp.post("/staff/applications/<int:application_id>/reject")
@staff_required
@action(_application_page)
def application_reject(application_id: int):
    """Reject an application; the applicant is told."""
    db.get_or_404(AccountApplication, application_id)
    form = RejectForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        flash(_("Please check the form."), "error")
        return None
    reject_application(application_id, current_user, form.reason.data or "")
    flash(_("Application rejected; the applicant is told."), "success")
    return redirect(url_for("accounts.applications"))
