"""Realistic German demo content for ``flask --app app seed-demo``, safe to run twice.

Rows are found by their natural key (organisation name, e-mail) and only added
when missing, so a second run changes nothing.
"""

import click
from flask import current_app
from sqlalchemy import delete, func, select

from accounts.models import Organisation, OrganisationKind, Role, User
from core.db import SchemaNotCurrent, build_new_schema
from core.extensions import db
from core.i18n import local_today
from core.privacy import PRIVACY_VERSION

DEMO_PASSWORD = "fundus-demo-2026"

ORGANISATIONS = [
    # Fictitious organisations: realistic kinds and places, no real company's name.
    dict(name="Wohnen am Hafen eG", kind=OrganisationKind.HOUSING_COMPANY,
         street="Speicherstraße 12", postcode="44147", city="Dortmund", phone="0231 555010"),
    dict(name="Westfälische Wohnstätten GmbH", kind=OrganisationKind.HOUSING_COMPANY,
         street="Rheinlanddamm 80", postcode="44139", city="Dortmund"),
    dict(name="Stadtverwaltung Musterstadt – Amt für Wohnen", kind=OrganisationKind.MUNICIPAL,
         street="Rathausplatz 1", postcode="44135", city="Dortmund"),
    dict(name="Mieterinitiative Nordstadt e.V.", kind=OrganisationKind.ASSOCIATION,
         street="Münsterstraße 40", postcode="44145", city="Dortmund"),
    dict(name="Beratungsstelle Wohnen und Migration", kind=OrganisationKind.COUNSELLING,
         street="Mallinckrodtstraße 90", postcode="44145", city="Dortmund",
         notes="Demo-Organisation: alle Angaben erfunden."),
]

USERS = [
    dict(email="admin@fundus.example", name="Aylin Demir", role=Role.ADMIN, org=None),
    dict(email="team@fundus.example", name="Jonas Weber", role=Role.STAFF, org=None),
    dict(email="wohnen@partner.example", name="Petra Schulz", role=Role.PARTNER,
         org="Wohnen am Hafen eG"),
    dict(email="beratung@partner.example", name="Mehmet Yılmaz", role=Role.PARTNER,
         org="Beratungsstelle Wohnen und Migration"),
    dict(email="amt@partner.example", name="Sabine Krüger", role=Role.PARTNER,
         org="Stadtverwaltung Musterstadt – Amt für Wohnen", locale="en"),
]


# The topics' English names (staff give them on the topics page).
TOPICS_EN = {
    "AGG": "Equal Treatment Act (AGG)", "Belegung": "Allocation of flats", "Beratung": "Counselling",
    "Dokumentation": "Documentation", "Fachtagung": "Conference", "Geflüchtete": "Refugees",
    "Interkulturelle Öffnung": "Intercultural opening", "Kampagne": "Campaign", "Nachbarschaft": "Neighbourhood",
    "Recht": "Law", "Testing": "Testing", "Training": "Training", "Vermietung": "Letting",
    "Wohnungspolitik": "Housing policy", "Wohnungssuche": "Searching for a flat",
}

# (title, kind, {language: stock} or {language: [unit codes]}, topics, target groups, extra fields)
B, C, E, M, P, F, O = "brochure", "concept", "exhibition", "method-kit", "poster", "media", "other"
MATERIALS = [
    ("Diskriminierung auf dem Wohnungsmarkt erkennen", B, {"de": 800, "en": 200, "tr": 150}, ["AGG", "Vermietung"], "housing,counselling", {"per_request_max": 100, "low_stock_threshold": 100}),
    ("Ihre Rechte bei der Wohnungssuche", B, {"de": 1200, "ar": 300, "tr": 300}, ["AGG", "Wohnungssuche"], "everyone,counselling", {"per_request_max": 200, "low_stock_threshold": 150}),
    ("WOHINDO – Wegweiser Wohnen in Dortmund", B, {"de": 600, "en": 250, "ar": 250}, ["Wohnungssuche", "Geflüchtete"], "everyone,counselling", {"per_request_max": 100, "low_stock_threshold": 80}),
    ("Das Allgemeine Gleichbehandlungsgesetz im Wohnbereich", B, {"de": 450}, ["AGG", "Recht"], "housing,municipal", {"per_request_max": 50, "low_stock_threshold": 50}),
    ("Fair vermieten – Leitfaden für Wohnungsunternehmen", B, {"de": 300, "en": 80}, ["Vermietung", "Interkulturelle Öffnung"], "housing", {"per_request_max": 30, "low_stock_threshold": 40}),
    ("Nachbarschaft gestalten", B, {"de": 90}, ["Nachbarschaft"], "associations,everyone", {"per_request_max": 20, "low_stock_threshold": 100}),
    ("Beschwerde einlegen – so geht's", B, {"de": 700, "tr": 200, "ru": 120}, ["Beratung", "AGG"], "everyone", {"per_request_max": 100, "low_stock_threshold": 100}),
    ("Testing-Verfahren auf dem Wohnungsmarkt", C, {"de": 60}, ["Testing", "Recht"], "counselling,associations", {"per_request_max": 5}),
    ("Interkulturelle Öffnung in der Wohnungsverwaltung", C, {"de": 120}, ["Interkulturelle Öffnung"], "housing,municipal", {"per_request_max": 10}),
    ("Arbeitshilfe: Diskriminierungsfälle dokumentieren", C, {"de": 150}, ["Beratung", "Dokumentation"], "counselling", {"per_request_max": 10}),
    ("Konzept: Antidiskriminierungsvereinbarung für Wohnungsunternehmen", C, {"de": 40}, ["Vermietung", "AGG"], "housing", {"per_request_max": 5}),
    ("Checkliste barrierefreie Vermietungspraxis", C, {"de": 200, "en": 50}, ["Vermietung"], "housing", {"per_request_max": 20}),
    ("Belegungspraxis und Quotierung – eine Handreichung", C, {"de": 75}, ["Belegung", "Recht"], "municipal,housing", {"per_request_max": 5}),
    ("Plakat: Wohnen ist ein Menschenrecht", P, {"de": 250, "en": 100}, ["Kampagne"], "everyone", {"per_request_max": 10, "low_stock_threshold": 30}),
    ("Plakat: Diskriminierung melden", P, {"de": 180, "tr": 60, "ar": 60}, ["Kampagne", "Beratung"], "everyone", {"per_request_max": 10, "low_stock_threshold": 30}),
    ("Postkartenset Vielfalt im Quartier", O, {"de": 1000}, ["Nachbarschaft", "Kampagne"], "everyone", {"per_request_max": 200}),
    ("Flyer Beratungsangebot der Servicestelle", O, {"de": 2000, "en": 500, "tr": 500, "ar": 500}, ["Beratung"], "everyone", {"per_request_max": 300, "low_stock_threshold": 300}),
    ("Dokumentation der Fachtagung Wohnen ohne Ausgrenzung", O, {"de": 35}, ["Fachtagung"], "municipal,associations", {"per_request_max": 3}),
    ("Handbuch Antidiskriminierungsberatung", F, {"de": ["BU-01", "BU-02", "BU-03"]}, ["Beratung", "Recht"], "counselling", {"loan_days_max": 42, "buffer_days": 0}),
    ("Film: Die Wohnungsbesichtigung (DVD)", F, {"de": ["FI-01", "FI-02"], "en": ["FI-03"]}, ["Testing", "Vermietung"], "everyone", {"loan_days_max": 21, "buffer_days": 1}),
    ("Fachbuch Wohnungspolitik und Migration", F, {"de": ["BU-10"]}, ["Wohnungspolitik"], "municipal", {"loan_days_max": 42, "buffer_days": 0}),
    ("Methodenkoffer Vorurteile im Vermietungsalltag", M, {"de": ["MK-01", "MK-02"]}, ["Vermietung", "Training"], "housing", {"loan_days_max": 14, "buffer_days": 2}),
    ("Methodenkoffer Nachbarschaftsdialog", M, {"de": ["MK-10"], "tr": ["MK-11"]}, ["Nachbarschaft", "Training"], "associations", {"loan_days_max": 14, "buffer_days": 2}),
    ("Ausstellung „Wohnen ohne Ausgrenzung“", E, {"de": ["AS-01", "AS-02"]}, ["AGG", "Kampagne"], "everyone,municipal", {"loan_days_max": 28, "buffer_days": 3, "contents": [("Roll-up-Display", 6), ("Transportkiste", 1), ("Begleitheft", 20)]}),
    ("Ausstellung „Zuhause in Dortmund“", E, {"de": ["AS-10"], "en": ["AS-11"]}, ["Geflüchtete", "Wohnungssuche"], "everyone", {"loan_days_max": 28, "buffer_days": 2, "contents": [("Stellwand", 8), ("Bildtafel", 16), ("Beleuchtung", 2)]}),
    ("Wanderausstellung „Gleich behandeln!“", E, {"de": ["AS-20"]}, ["AGG", "Interkulturelle Öffnung"], "housing,municipal", {"loan_days_max": 21, "buffer_days": 2, "contents": [("Roll-up-Display", 4), ("Tablet mit Hörstationen", 1), ("Transportkoffer", 2)]}),
]


def seed_materials() -> int:
    """Add the demo catalogue; returns how many materials were new."""
    from materials.catalogue import topic_for
    from materials.models import Edition, KitContent, Lending, Material, MaterialKind, StockEntry, StockReason, Unit

    added = 0
    for title, kind, editions, topics, groups, extra in MATERIALS:
        if db.session.scalar(select(Material.id).where(Material.title == title)) is not None:
            continue
        extra = dict(extra)
        contents = extra.pop("contents", [])
        returnable = any(isinstance(v, list) for v in editions.values())
        material = Material(
            title=title, kind=MaterialKind(kind), lending=Lending.RETURNABLE if returnable else Lending.GIVEAWAY,
            target_groups=groups, publisher="Planerladen e.V.", year=2020 + len(title) % 6,
            description=f"{title}. Herausgegeben von der Integrationsagentur des Planerladen e.V. (Demo-Eintrag).",
            **extra,
        )
        material.topics = [topic_for(name) for name in topics]
        for topic in material.topics:
            topic.name_en = topic.name_en or TOPICS_EN.get(topic.name, "")
        material.contents = [KitContent(name=n, quantity=q, position=i) for i, (n, q) in enumerate(contents)]
        for language, stock in editions.items():
            edition = Edition(language=language)
            if returnable:
                edition.units = [Unit(inventory_code=code) for code in stock]
            else:
                edition.stock_on_hand = stock
                db.session.add(StockEntry(edition=edition, delta=stock, balance_after=stock,
                                          reason=StockReason.INTAKE, note="Anfangsbestand (Demo)"))
            material.editions.append(edition)
        material.refresh_search_text()
        db.session.add(material)
        db.session.flush()
        added += 1
    return added


def seed_requests() -> int:
    """Demo requests in every state, made through the real workflows; only if there are none yet."""
    import uuid
    from datetime import timedelta

    from materials import cart, lending
    from materials.models import Booking, Delivery, Material, Request, UnitCondition

    if db.session.scalar(select(Request.id).limit(1)) is not None:
        return 0
    staff = db.session.scalar(select(User).where(User.email == "team@fundus.example"))
    partners = {u.email: u for u in db.session.scalars(select(User).where(User.role == Role.PARTNER))}
    hafen, beratung = partners["wohnen@partner.example"], partners["beratung@partner.example"]

    def edition(title: str, language: str = "de"):
        material = db.session.scalar(select(Material).where(Material.title == title))
        return next(e for e in material.editions if e.language == language)

    def request(user, items, purpose):
        return cart.submit_request(user, {"items": items}, uuid.uuid4().hex, purpose, "", Delivery.PICKUP, "")

    def period(title, start, days):
        return {"edition_id": edition(title).id, "starts_on": start.isoformat(),
                "ends_on": (start + timedelta(days=days)).isoformat()}

    today = local_today()
    request(hafen, [{"edition_id": edition("Ihre Rechte bei der Wohnungssuche", "tr").id, "quantity": 50},
                    period("Ausstellung „Wohnen ohne Ausgrenzung“", today + timedelta(days=10), 14)],
            "Mieterfest im Quartier Hafen")  # submitted
    approved = request(beratung, [period("Methodenkoffer Vorurteile im Vermietungsalltag", today + timedelta(days=3), 5)],
                       "Teamfortbildung")
    lending.approve_request(approved.id, staff)
    rejected = request(hafen, [{"edition_id": edition("Plakat: Wohnen ist ein Menschenrecht").id, "quantity": 10}],
                       "Aushang im Kundencenter")
    lending.reject_request(rejected.id, staff, "Das Plakat wird gerade neu aufgelegt; bitte im nächsten Monat erneut anfragen.")
    cancelled = request(beratung, [{"edition_id": edition("Flyer Beratungsangebot der Servicestelle").id, "quantity": 100}],
                        "Infostand")
    lending.cancel_request(cancelled.id, beratung)

    # Loans that started in the past are set up as history: booked, handed over, some returned.
    out = request(hafen, [period("Ausstellung „Zuhause in Dortmund“", today + timedelta(days=1), 20)], "Ausstellung im Foyer")
    overdue = request(beratung, [period("Film: Die Wohnungsbesichtigung (DVD)", today + timedelta(days=1), 3)],
                      "Filmabend")
    closed = request(hafen, [period("Wanderausstellung „Gleich behandeln!“", today + timedelta(days=1), 5)], "Aktionswoche")
    for req, start, days in ((out, today - timedelta(days=5), 20), (overdue, today - timedelta(days=12), 3),
                             (closed, today - timedelta(days=40), 5)):
        for booking in db.session.scalars(select(Booking).where(Booking.request_id == req.id)):
            booking.starts_on, booking.ends_on = start, start + timedelta(days=days)
            booking.blocked_until = booking.ends_on + timedelta(days=booking.unit.edition.material.buffer_days)
        db.session.commit()
        lending.approve_request(req.id, staff)
        lending.hand_over(req.id, [b.id for b in req.bookings], staff, contents_checked=True, early_confirmed=True)
    lending.take_back(closed.bookings[0].id, staff, UnitCondition.DAMAGED, "Roll-up-Display geknickt")
    lending.close_request(closed.id, staff)
    returned = request(beratung, [{"edition_id": edition("Handbuch Antidiskriminierungsberatung").id,
                                   "starts_on": (today + timedelta(days=1)).isoformat(),
                                   "ends_on": (today + timedelta(days=8)).isoformat()}], "Einarbeitung")
    lending.approve_request(returned.id, staff)
    lending.hand_over(returned.id, [b.id for b in returned.bookings], staff, contents_checked=True, early_confirmed=True)
    lending.take_back(returned.bookings[0].id, staff, UnitCondition.GOOD, "")
    return 8


TRAININGS = [
    # (title, target groups, format, days from today, hours, sessions, seats, status)
    ("Diskriminierungsfreie Vermietung in der Praxis", "housing", "in-person", 12, (9, 16), 1, 16, "published"),
    ("Das AGG im Wohnbereich – Grundlagen für Verwaltungen", "municipal", "in-person", 20, (9, 13), 1, 20, "published"),
    ("Antidiskriminierungsberatung: Fälle aufnehmen und dokumentieren", "counselling", "online", 26, (10, 12), 1, 25, "published"),
    ("Interkulturelle Öffnung von Wohnungsunternehmen (zweitägig)", "housing,associations", "in-person", 33, (9, 16), 2, 14, "published"),
    ("Testing-Verfahren verstehen", "associations,counselling", "hybrid", 40, (14, 17), 1, 2, "published"),
    ("Wohnungssuche mit Fluchtgeschichte begleiten", "everyone", "in-person", 47, (17, 20), 1, 30, "cancelled"),
    ("Beschwerdemanagement bei Diskriminierung im Quartier", "housing,municipal", "in-person", 55, (9, 15), 1, 18, "published"),
    ("Einführung in die Antidiskriminierungsarbeit", "everyone", "online", 62, (10, 12), 1, 40, "published"),
    ("Sprachsensible Kommunikation in der Mieterberatung", "housing,counselling", "in-person", 75, (9, 16), 1, 15, "draft"),
    # Past trainings, with attendance (two of them last year, so the figures have a year to compare with)
    ("Grundkurs AGG und Wohnen", "housing,municipal", "in-person", -420, (9, 16), 1, 20, "published"),
    ("Beratung bei Wohnungsdiskriminierung", "counselling", "online", -390, (10, 13), 1, 20, "published"),
    ("AGG-Grundlagen für Wohnungsunternehmen", "housing", "in-person", -60, (9, 16), 1, 16, "published"),
    ("Rassismuskritische Beratungspraxis", "counselling", "online", -35, (10, 13), 1, 20, "published"),
    ("Fachtag Faire Vermietung (zweitägig)", "housing,municipal,associations", "in-person", -14, (9, 16), 2, 24, "published"),
]

# (name, e-mail local part, organisation, position); fictitious people
TRAINEES = [
    ("Ayşe Demir", "a.demir", "Wohnen am Hafen eG", "Vermietung"),
    ("Jan Kowalski", "j.kowalski", "Stadt Dortmund, Wohnungsamt", "Sachbearbeitung"),
    ("Fatima El-Amrani", "f.elamrani", "Beratungsstelle Wohnen und Migration", "Beratung"),
    ("Thomas Becker", "t.becker", "Hafenviertel Wohnbau GmbH", "Bestandsmanagement"),
    ("Olena Shevchenko", "o.shevchenko", "Mieterinitiative Nordstadt e.V.", "Rechtsberatung"),
    ("Mehmet Yıldız", "m.yildiz", "Quartiersbüro Westerfilde", "Quartiersmanagement"),
    ("Sabine Krüger", "s.krueger", "Stadtverwaltung Musterstadt – Amt für Wohnen", "Teamleitung"),
    ("Kwame Mensah", "k.mensah", "Integrationsrat", "Geschäftsführung"),
    ("Lena Hoffmann", "l.hoffmann", "Dortmunder Wohnen eG", "Sozialmanagement"),
    ("Giorgos Papadopoulos", "g.papadopoulos", "Caritas Dortmund", "Migrationsberatung"),
]



def seed_trainings() -> list:
    """Demo trainings through the models; returns the ones added (registrations follow)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from events.models import Training, TrainingFormat, TrainingSession, TrainingStatus
    from materials.models import Material

    berlin = ZoneInfo("Europe/Berlin")
    today = datetime.now(berlin).date()
    handouts = list(db.session.scalars(select(Material).where(Material.archived_at.is_(None))
                                       .order_by(Material.id).limit(3)))
    added = []
    for title, groups, fmt, days, (start, end), count, seats, status in TRAININGS:
        if db.session.scalar(select(Training.id).where(Training.title == title)) is not None:
            continue
        training = Training(
            title=title, target_groups=groups, format=TrainingFormat(fmt), seats=seats, status=TrainingStatus(status),
            venue="" if fmt == "online" else "Planerladen e.V., Schützenstraße 42, 44147 Dortmund",
            online_link="https://meet.example/fundus-demo" if fmt != "in-person" else "",
            trainers="Team der Integrationsagentur", ask_accessibility=True, ask_dietary=fmt != "online",
            description=f"{title}. Demo-Fortbildung der Integrationsagentur des Planerladen e.V.",
        )
        for n in range(count):
            day = today + timedelta(days=days + n)
            training.sessions.append(TrainingSession(
                starts_at=datetime(day.year, day.month, day.day, start, tzinfo=berlin),
                ends_at=datetime(day.year, day.month, day.day, end, tzinfo=berlin),
            ))
        training.handouts = handouts[: 1 + len(added) % 3]
        db.session.add(training)
        added.append(training)
    return added


def seed_registrations(trainings) -> None:
    """Registrations through the real workflows: confirmed, pending, a full training with a waiting
    list, and past trainings with attendance marked."""
    from sqlalchemy import insert

    from accounts.organisations import known_organisation_id
    from core.models import utcnow
    from events import links, participants, registrations
    from events.models import Registration, RegistrationStatus, TrainingStatus, registration_organisations

    now = utcnow()
    staff = db.session.scalar(select(User).where(User.email == "team@fundus.example"))
    for index, training in enumerate(trainings):
        if training.status != TrainingStatus.PUBLISHED:
            continue
        people = TRAINEES[index % 3: index % 3 + min(len(TRAINEES) - index % 3, 4 + index % 5)]
        if training.seats <= 2:
            people = TRAINEES[:5]  # full, three on the waiting list
        if training.sessions[0].starts_at > now:
            for number, (name, local, org, position) in enumerate(people):
                result = registrations.register(training.id, name, f"{local}@example.org", org, position,
                                                '{"dietary": "vegetarisch"}' if number == 1 else "",
                                                health_consent=number == 1)
                if number % 4 != 3:  # every fourth has not confirmed yet
                    registrations.confirm_registration(links.confirm_token(result.registration))
            continue
        # Past trainings: registrations as they stood, then the attendance staff marked.
        present = set()
        for number, (name, local, org, position) in enumerate(people):
            registration = Registration(training=training, name=name, email=f"{local}@example.org",
                                        organisation=org, position=position, consent_at=now, confirmed_at=now,
                                        privacy_version=PRIVACY_VERSION, status=RegistrationStatus.CONFIRMED)
            links.set_link_salt(registration)
            db.session.add(registration)
            db.session.flush()
            known = known_organisation_id(org)  # as registering would (the figures count organisations)
            if known is not None:
                db.session.execute(insert(registration_organisations).values(registration_id=registration.id,
                                                                             organisation_id=known))
            for session in training.sessions:
                if number % 5 != 4:  # most came
                    present.add((registration.id, session.id))
        db.session.commit()
        participants.set_attendance(training.id, present, staff)


def seed_demo() -> list[tuple[str, str, str]]:
    """Add what is missing of the demo content; return the demo logins."""
    orgs: dict[str, Organisation] = {}
    for data in ORGANISATIONS:
        org = db.session.scalar(select(Organisation).where(Organisation.name == data["name"]))
        if org is None:
            org = Organisation(**data)
            db.session.add(org)
        orgs[data["name"]] = org
    db.session.flush()

    logins = []
    for data in USERS:
        user = db.session.scalar(select(User).where(User.email == data["email"]))
        if user is None:
            org = orgs[data["org"]] if data["org"] else None
            user = User(email=data["email"], name=data["name"], role=data["role"],
                        organisation_id=org.id if org else None, locale=data.get("locale", "de"))
            user.set_password(DEMO_PASSWORD)
            db.session.add(user)
        logins.append((data["role"].value, data["email"], DEMO_PASSWORD))
    seed_materials()
    trainings = seed_trainings()
    db.session.commit()
    # Demo requests and registrations go through the real workflows, which queue mails
    # to the demo addresses; those are not meant to leave the house.
    from core.mail import OutboxMessage

    last_mail = db.session.scalar(select(func.max(OutboxMessage.id))) or 0
    seed_requests()
    seed_registrations(trainings)
    db.session.execute(delete(OutboxMessage).where(OutboxMessage.id > last_mail))
    db.session.commit()
    return logins


def run() -> None:
    """Load demo organisations, accounts, materials, requests, trainings and registrations."""
    try:
        build_new_schema()
    except SchemaNotCurrent as exc:
        raise click.ClickException(str(exc)) from None
    logins = seed_demo()
    click.echo(f"Demo content is in place. Sign in at {current_app.config['BASE_URL']}/login with:")
    for role, email, password in logins:
        click.echo(f"  {role:<8} {email:<28} password: {password}")
