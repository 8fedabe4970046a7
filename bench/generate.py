"""Bulk data for the benchmark: years of history, written with Core ``executemany`` in large batches.

large: 5,000 materials, 20,000 units, 200,000 loans, 2,000 organisations, 3,000 trainings with
6,000 sessions and 150,000 registrations (with their attendance, and the handover entries of the
loans, which the figures count); small: a hundredth of that. One training has exactly
200 registrations (the participant list page). Everything goes through the real schema, so the
database's own guards (stock CHECK, the no-overlap exclusion constraint or triggers) hold.
"""

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from accounts.models import Organisation, OrganisationKind, Role, User
from core.audit import AuditEntry
from core.extensions import db
from events.models import (
    Attendance,
    Registration,
    RegistrationStatus,
    Training,
    TrainingFormat,
    TrainingSession,
    TrainingStatus,
    registration_organisations,
)
from materials.models import (
    Booking,
    BookingStatus,
    Edition,
    Lending,
    Material,
    MaterialKind,
    Request,
    RequestStatus,
    Unit,
    fold,
)

SCALES = {
    "large": dict(materials=5_000, units=20_000, loans=200_000, organisations=2_000, trainings=3_000,
                  registrations=150_000),
    "small": dict(materials=50, units=200, loans=2_000, organisations=20, trainings=30, registrations=1_500),
}
STAFF_EMAIL = "bench-staff@fundus.example"
PARTNER_EMAIL = "bench-partner@fundus.example"
WORDS = ("Wohnen", "Vielfalt", "Vermietung", "Nachbarschaft", "Beratung", "Rechte", "Quartier", "Gleichbehandlung",
         "Wohnungssuche", "Migration", "Antidiskriminierung", "Praxis", "Leitfaden", "Ausstellung", "Dialog")
BATCH = 5_000


def _insert(table, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        db.session.execute(insert(table), rows[start:start + BATCH])


def generate(scale: str, password_hash: str, seed: int = 2026) -> dict:
    """Fill an empty, migrated database; returns ids the benchmark pages need."""
    n = SCALES[scale]
    rnd = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()

    _insert(Organisation.__table__, [
        dict(id=i, name=f"Organisation {i:05d}", kind=OrganisationKind.HOUSING_COMPANY.value, street="", postcode="",
             city="Dortmund", phone="", email="", notes="", created_at=now, updated_at=now)
        for i in range(1, n["organisations"] + 1)])
    _insert(User.__table__, [dict(id=1, email=STAFF_EMAIL, name="Bench Staff", role=Role.STAFF.value,
                                  organisation_id=None, password_hash=password_hash, locale="de", active=True,
                                  created_at=now, updated_at=now),
                             dict(id=2, email=PARTNER_EMAIL, name="Bench Partner", role=Role.PARTNER.value,
                                  organisation_id=1, password_hash=password_hash, locale="de", active=True,
                                  created_at=now, updated_at=now)])

    materials, editions, units = [], [], []
    returnable_editions = []
    units_per_kit = max(1, n["units"] // (n["materials"] // 2))
    for i in range(1, n["materials"] + 1):
        title = f"{rnd.choice(WORDS)} {rnd.choice(WORDS)} {i}"
        returnable = i % 2 == 0
        materials.append(dict(
            id=i, title=title, subtitle="",
            kind=(MaterialKind.EXHIBITION if returnable else MaterialKind.BROCHURE).value,
            lending=(Lending.RETURNABLE if returnable else Lending.GIVEAWAY).value, description=f"Beschreibung {title}",
            target_groups="housing", publisher="Planerladen e.V.", co_publishers="", year=2000 + i % 26,
            cover_path="", pdf_path="", per_request_max=None, low_stock_threshold=10, loan_days_max=None,
            buffer_days=2, pickup_notes="", archived_at=None, search_text=fold(title), created_at=now, updated_at=now))
        editions.append(dict(id=i, material_id=i, language="de", stock_on_hand=0 if returnable else 500))
        if returnable:
            returnable_editions.append(i)
    unit_id = 0
    for edition_id in returnable_editions:
        for _ in range(units_per_kit):
            unit_id += 1
            units.append(dict(id=unit_id, edition_id=edition_id, inventory_code=f"U-{unit_id:06d}",
                              condition="good", condition_note="", retired_at=None, created_at=now, updated_at=now))
    _insert(Material.__table__, materials)
    _insert(Edition.__table__, editions)
    _insert(Unit.__table__, units)

    # Loans: each unit gets sequential two-week loans going back in time, with its buffer respected.
    loans_per_unit = max(1, n["loans"] // len(units))
    requests, bookings = [], []
    booking_id = 0
    for unit in units:
        for k in range(loans_per_unit):
            booking_id += 1
            start = today - timedelta(days=20 * (k + 1))
            end = start + timedelta(days=14)
            status = BookingStatus.RETURNED
            if k == 0 and unit["id"] % 50 == 0:
                status = BookingStatus.HANDED_OVER  # overdue
            requests.append(dict(id=booking_id, organisation_id=1 + booking_id % n["organisations"], created_by_id=None,
                                 status=(RequestStatus.HANDED_OVER if status == BookingStatus.HANDED_OVER
                                         else RequestStatus.CLOSED).value,
                                 purpose="Aktionswoche", audience="", delivery="pickup", shipping_address="",
                                 decided_at=now, decided_by_id=1, reject_reason="", submit_key=None,
                                 created_at=now, updated_at=now))
            bookings.append(dict(id=booking_id, unit_id=unit["id"], request_id=booking_id, starts_on=start, ends_on=end,
                                 blocked_until=end + timedelta(days=2), status=status.value, reminded_at=None,
                                 created_at=now, updated_at=now))
    _insert(Request.__table__, requests)
    _insert(Booking.__table__, bookings)

    trainings, sessions, registrations = [], [], []
    for i in range(1, n["trainings"] + 1):
        first = datetime.combine(today, datetime.min.time(), UTC) + timedelta(days=i - n["trainings"] + 60, hours=8)
        trainings.append(dict(id=i, title=f"Fortbildung {rnd.choice(WORDS)} {i}", description="Inhalt",
                              target_groups=rnd.choice(("housing", "municipal", "associations", "counselling")),
                              format=TrainingFormat.IN_PERSON.value, venue="Planerladen", address="Dortmund",
                              online_link="", trainers="Team", language="de", seats=250,
                              registration_opens_at=None, registration_closes_at=None,
                              status=TrainingStatus.PUBLISHED.value, ask_accessibility=False, ask_dietary=True,
                              free_question="", sequence=0, created_at=now, updated_at=now))
        for d in range(2):
            sessions.append(dict(id=2 * i - 1 + d, training_id=i, starts_at=first + timedelta(days=d),
                                 ends_at=first + timedelta(days=d, hours=6)))
    # The first upcoming training gets exactly 200 registrations; the rest are spread over the others.
    target = max(1, n["trainings"] - 40)  # one whose sessions are still to come
    per_training = max(1, (n["registrations"] - 200) // (n["trainings"] - 1))
    reg_id = 0
    for training_id in range(1, n["trainings"] + 1):
        count = 200 if training_id == target else min(per_training, 240)
        for _ in range(count):
            reg_id += 1
            registrations.append(dict(
                id=reg_id, training_id=training_id, name=f"Person {reg_id}", email=f"p{reg_id}@example.org",
                organisation=f"Organisation {reg_id % 97}", position="", answers='{"dietary": "vegetarisch"}',
                locale="de", status=RegistrationStatus.CONFIRMED.value, confirmed_at=now, hold_expires_at=None,
                manage_token_hash=f"{reg_id:064d}", confirm_token_hash=f"c{reg_id:063d}", consent_at=now,
                link_salt=None, reminded_at=None, anonymised_at=None, created_at=now, updated_at=now))
    _insert(Training.__table__, trainings)
    _insert(TrainingSession.__table__, sessions)
    _insert(Registration.__table__, registrations)
    # What the figures count: four in five people came to the first session of the trainings that have
    # begun; a third gave an organisation Fundus knows; each loan's request has its handover entry.
    past = {s["training_id"]: s["id"] for s in sessions if s["starts_at"] <= now and s["id"] % 2 == 1}
    _insert(Attendance.__table__, [dict(registration_id=r["id"], session_id=past[r["training_id"]])
                                   for r in registrations if r["training_id"] in past and r["id"] % 5])
    _insert(registration_organisations, [dict(registration_id=r["id"], organisation_id=1 + r["id"] % n["organisations"])
                                         for r in registrations if r["id"] % 3 == 0])
    _insert(AuditEntry.__table__, [dict(created_at=datetime.combine(b["starts_on"], datetime.min.time(), UTC),
                                        actor_id=1, actor_role="staff", action="hand_over", object_type="request",
                                        object_id=b["request_id"], from_state="approved", to_state="handed_over",
                                        reason="", details="") for b in bookings])
    db.session.commit()
    return {"material": 2, "training": target, "request": bookings[0]["request_id"], "materials": len(materials),
            "loans": len(bookings), "registrations": len(registrations)}


def reset_sequences() -> None:
    """PostgreSQL: move the id sequences past the generated ids."""
    if db.engine.dialect.name != "postgresql":
        return
    for table in db.metadata.sorted_tables:
        if "id" in table.c and table.c.id.autoincrement:
            db.session.execute(db.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 1))"))
    db.session.commit()



