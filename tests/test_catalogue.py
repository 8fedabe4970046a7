"""The public catalogue and the staff pages for materials, stock and units."""

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from accounts.models import Role
from core.extensions import db
from core.vocabulary import TargetGroup
from materials.bookings import book_unit
from materials.catalogue import save_material
from materials.models import Edition, Material, MaterialKind, StockEntry, Unit


def titles(client, **params) -> str:
    return client.get("/materials/", query_string=params).get_data(as_text=True)


def test_search_ignores_case_and_accents(client, make_material):
    make_material(title="Broschüre zum AGG", editions={"de": 10, "tr": 5})
    make_material(title="Ausstellung Wohnen", returnable=True)
    for q in ("broschure", "Broschuere", "BROSCHÜRE", "agg broschüre"):
        page = titles(client, q=q)
        assert "Broschüre zum AGG" in page and "Ausstellung Wohnen" not in page, q
    assert "Broschüre zum AGG" not in titles(client, q="Mietvertrag")
    assert "1 Material gefunden" in titles(client, q="broschure")


def test_filters_by_kind_topic_language_and_target_group(client, make_material, make_user):
    save_material(None, ["AGG", "Wohnungssuche"], ["de", "ar"], make_user(Role.STAFF), title="Wegweiser Wohnungssuche",
                  kind=MaterialKind.BROCHURE, lending=make_material().lending,
                  target_groups=f"{TargetGroup.COUNSELLING},{TargetGroup.EVERYONE}")
    make_material(title="Vielfalt-Koffer", returnable=True, kind=MaterialKind.METHOD_KIT,
                  target_groups=TargetGroup.HOUSING.value)
    assert "Wegweiser" in titles(client, kind="brochure") and "Vielfalt-Koffer" not in titles(client, kind="brochure")
    assert "Vielfalt-Koffer" in titles(client, kind="method-kit")
    assert "Wegweiser" in titles(client, topic="wohnungssuche")
    assert "Wegweiser" in titles(client, language="ar") and "Vielfalt-Koffer" not in titles(client, language="ar")
    assert "Wegweiser" in titles(client, target_group="counselling")
    assert "Wegweiser" not in titles(client, target_group="housing")
    # Unknown values are ignored, not errors.
    assert client.get("/materials/?kind=castle&language=x1&page=abc").status_code == 200


def test_search_finds_kind_and_target_group_names_in_both_languages_as_people_type_them(client, make_material):
    """Issue 16.2: "Broschüre" found nothing although brochures exist; "Arbeitshilfe" missed concept papers."""
    make_material(title="Wegweiser AGG", kind=MaterialKind.BROCHURE, target_groups=TargetGroup.MUNICIPAL.value)
    make_material(title="Fälle dokumentieren", kind=MaterialKind.CONCEPT, target_groups=TargetGroup.COUNSELLING.value)
    make_material(title="Vielfalt-Koffer", returnable=True, kind=MaterialKind.METHOD_KIT,
                  target_groups=TargetGroup.HOUSING.value)

    def found(q):
        page = titles(client, q=q)
        return {t for t in ("Wegweiser AGG", "Fälle dokumentieren", "Vielfalt-Koffer") if t in page}

    for q in ("Broschüre", "broschuere", "BROSCHÜRE", "Brosch", "brochure", "wegweiser brosch"):
        assert found(q) == {"Wegweiser AGG"}, q
    for q in ("Arbeitshilfe", "arbeitsh", "Konzept", "handout", "Concept paper"):
        assert found(q) == {"Fälle dokumentieren"}, q
    assert found("Methodenkoffer") == {"Vielfalt-Koffer"}
    assert found("Wohnungswirtschaft") == found("housing industry") == found("WOHNUNGSWIRT") == {"Vielfalt-Koffer"}
    assert found("Beratungsstellen") == found("counselling") == {"Fälle dokumentieren"}
    assert found("kommunalverwaltung") == found("Municipal") == {"Wegweiser AGG"}
    assert found("broschüre beratung") == set()  # every word must match
    # Both languages whatever the page's language: an English page finds "Broschüre" too.
    english = client.get("/materials/", query_string={"q": "Broschüre"}, headers={"Accept-Language": "en"})
    assert "1 material found" in english.get_data(as_text=True)


def test_an_empty_result_says_what_was_searched_and_offers_to_reset_the_filters(client, make_material):
    make_material(title="Wegweiser AGG", kind=MaterialKind.BROCHURE, editions={"de": 3})
    page = titles(client, q="Wegweiser", kind="poster", language="de")
    assert "0 Materialien gefunden" in page
    assert "Nichts gefunden für „Wegweiser“" in page
    assert re.search(r"<dt>Art</dt><dd>Plakat</dd>", page) and re.search(r"<dt>Sprache</dt><dd>Deutsch</dd>", page)
    assert '<a href="/materials/?q=Wegweiser">Filter zurücksetzen</a>' in page
    assert "Wegweiser AGG" in titles(client, q="Wegweiser")
    # Without filters there is nothing to reset, but the whole catalogue is offered.
    page = titles(client, q="Mietvertrag")
    assert "Nichts gefunden für „Mietvertrag“" in page and "Filter zurücksetzen" not in page
    assert '<a href="/materials/">Alle Materialien zeigen</a>' in page


def test_pick_dates_see_what_is_free(client, make_material):
    """A kit booked 1–5 March with 2 buffer days is taken until 7 March."""
    kit = make_material(title="Ausstellungskoffer Gleichbehandlung", returnable=True, buffer_days=2)
    unit = kit.editions[0].units[0]
    start = date(2027, 3, 1)
    book_unit(unit.id, start, start + timedelta(days=4))
    book_unit(unit.id, start + timedelta(days=14), start + timedelta(days=16))
    db.session.commit()

    def free(frm, to):
        return "Ausstellungskoffer" in titles(client, available_from=frm.isoformat(), available_to=to.isoformat())

    assert not free(start + timedelta(days=3), start + timedelta(days=3))
    assert not free(start + timedelta(days=6), start + timedelta(days=6))  # buffer after the booking
    assert free(start + timedelta(days=7), start + timedelta(days=10))
    # Its own buffer must end before the next booking starts on the 15th.
    assert not free(start + timedelta(days=10), start + timedelta(days=12))
    assert free(start + timedelta(days=9), start + timedelta(days=11))


def test_each_kit_is_checked_with_its_own_buffer_days(client, make_material):
    """The availability search uses each kit's own buffer: a kit without buffer is free up to the day
    before its next booking, even when another kit of the catalogue needs ten days."""
    make_material(title="Koffer mit langem Puffer", returnable=True, buffer_days=10)
    kit = make_material(title="Koffer ohne Puffer", returnable=True, buffer_days=0)
    start = date(2027, 3, 10)
    book_unit(kit.editions[0].units[0].id, start, start + timedelta(days=2))
    db.session.commit()
    page = titles(client, available_from="2027-03-06", available_to="2027-03-09")
    assert "Koffer ohne Puffer" in page and "Koffer mit langem Puffer" in page
    assert "Koffer ohne Puffer" not in titles(client, available_from="2027-03-06", available_to="2027-03-10")


def test_giveaway_material_counts_as_free_only_with_stock(client, make_material):
    make_material(title="Vergriffene Broschüre", editions={"de": 0})
    make_material(title="Vorrätige Broschüre", editions={"de": 3})
    page = titles(client, available_from="2027-03-01")
    assert "Vorrätige Broschüre" in page and "Vergriffene Broschüre" not in page


def test_bad_dates_get_a_message(client, make_material):
    make_material(title="Irgendwas")
    page = titles(client, available_from="31.02.2027")
    assert "„31.02.2027“ ist kein Datum zwischen 2000 und 2099 (JJJJ-MM-TT)." in page
    assert "ist kein Datum zwischen 2000 und 2099" in titles(client, available_from="9999-12-31")
    page = titles(client, available_from="2027-03-10", available_to="2027-03-01")
    assert "Das Ende des Zeitraums liegt vor seinem Beginn." in page and "Irgendwas" in page


def test_pagination_keeps_the_filters(client, make_material):
    for n in range(23):
        make_material(title=f"Flyer {n:02d}", editions={"de": 1})
    page = titles(client, q="flyer", language="de")
    assert "Seite 1 von 2" in page
    assert "/materials/?page=2&amp;q=flyer&amp;language=de" in page
    second = titles(client, q="flyer", language="de", page=2)
    assert "Flyer 22" in second and "Flyer 00" not in second


def test_detail_page_shows_editions_and_the_month_calendar(client, make_material):
    kit = make_material(title="Ausstellung Vielfalt", returnable=True, units={"de": ["AV-1"], "en": ["AV-2"]},
                        buffer_days=1, loan_days_max=21)
    book_unit(kit.editions[0].units[0].id, date(2027, 3, 3), date(2027, 3, 4))
    db.session.commit()
    page = client.get(f"/materials/{kit.id}?month=2027-03").get_data(as_text=True)
    assert "Deutsch" in page and "Englisch" in page
    assert "Verfügbarkeit im März 2027" in page
    assert page.count("1 frei") == 3  # 3rd, 4th and the buffer day 5th: one of two units free
    assert "höchstens 21 Tage" in page
    # Issue 16: a partner who needs the German kit sees the German units alone: booked on those days.
    assert f'href="/materials/{kit.id}?month=2027-03&amp;language=de#calendar"' in page
    german = client.get(f"/materials/{kit.id}?month=2027-03&language=de").get_data(as_text=True)
    assert german.count("1 frei") == 28 and german.count(">belegt<") == 3
    assert "Freie Exemplare pro Tag (Deutsch)" in german and 'aria-current="true">Deutsch</a>' in german
    english = client.get(f"/materials/{kit.id}?month=2027-03&language=en").get_data(as_text=True)
    assert english.count("1 frei") == 31
    assert client.get(f"/materials/{kit.id}?month=2027-03&language=xx").get_data(as_text=True).count("1 frei") == 3
    assert client.get(f"/materials/{kit.id}?month=kaputt").status_code == 200
    assert client.get("/materials/999999").status_code == 404


def test_the_chosen_free_period_travels_to_the_calendar_and_the_request_form(client, make_material, make_user, login):
    """Issue 16.8: the dates of the catalogue's free-period filter open the material on that month, filled in."""
    kit = make_material(title="Ausstellung Vielfalt", returnable=True)
    page = titles(client, available_from="2027-05-10", available_to="2027-05-14")
    link = f"/materials/{kit.id}?available_from=2027-05-10&amp;available_to=2027-05-14"
    assert f'href="{link}"' in page
    # Signing in first keeps them too.
    assert f"next=/materials/{kit.id}?available_from%3D2027-05-10%26available_to%3D2027-05-14" in \
        client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    login(make_user(Role.PARTNER))
    page = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert "Verfügbarkeit im Mai 2027" in page
    assert re.search(r'<input[^>]*id="starts_on"[^>]*value="2027-05-10"', page)
    assert re.search(r'<input[^>]*id="ends_on"[^>]*value="2027-05-14"', page)
    # Turning the months keeps the period, and so does the way back to the catalogue.
    assert "month=2027-06&amp;available_from=2027-05-10&amp;available_to=2027-05-14#calendar" in page
    assert 'href="/materials/?available_from=2027-05-10&amp;available_to=2027-05-14"' in page
    # An explicit month wins; without a period the form stays empty.
    assert "Verfügbarkeit im Juni 2027" in client.get(
        f"/materials/{kit.id}?month=2027-06&available_from=2027-05-10").get_data(as_text=True)
    assert not re.search(r'id="starts_on"[^>]*value="\d', client.get(f"/materials/{kit.id}").get_data(as_text=True))


def test_archived_material_leaves_the_catalogue_but_not_the_staff_view(client, make_material, make_user, login):
    material = make_material(title="Alte Broschüre")
    login(make_user(Role.STAFF))
    assert client.post(f"/materials/{material.id}/archive", data={"archived": "1"}).status_code == 302
    assert client.get(f"/materials/{material.id}").status_code == 200
    assert "Alte Broschüre" in titles(client, archived="1")
    client.post("/logout")
    assert "Alte Broschüre" not in titles(client)
    assert client.get(f"/materials/{material.id}").status_code == 404
    assert db.session.get(Material, material.id) is not None  # never deleted


def test_staff_create_material_with_editions_and_topics(client, make_user, login):
    login(make_user(Role.STAFF))
    bad = client.post("/materials/new", data={"title": "", "kind": "brochure", "lending": "giveaway",
                                              "languages": "de, Deutsch", "buffer_days": "2"})
    page = bad.get_data(as_text=True)
    assert "Bitte geben Sie den Titel ein." in page and "„Deutsch“ ist kein Sprachkürzel" in page
    assert db.session.scalar(select(func.count()).select_from(Material)) == 0
    response = client.post("/materials/new", data={
        "title": "Diskriminierung beim Wohnen erkennen", "kind": "brochure", "lending": "giveaway",
        "languages": "de, en, tr", "topics": "AGG, Vermietung", "target_groups": ["housing", "municipal"],
        "per_request_max": "50", "low_stock_threshold": "20", "buffer_days": "2", "year": "2024",
    })
    assert response.status_code == 302
    material = db.session.scalar(select(Material))
    assert [e.language for e in material.editions] == ["de", "en", "tr"]
    assert {t.name for t in material.topics} == {"AGG", "Vermietung"}
    assert material.target_group_list == [TargetGroup.HOUSING, TargetGroup.MUNICIPAL]
    assert "vermietung" in material.search_text


def test_staff_record_stock_and_the_ledger_shows_it(client, make_material, make_user, login):
    staff = make_user(Role.STAFF, name="Jonas Weber")
    material = make_material(editions={"de": 0})
    edition = material.editions[0]
    login(staff)
    url = f"/materials/{material.id}/manage"
    ok = client.post(url, data={"action": "stock", "stock-edition_id": edition.id, "stock-quantity": "500",
                                "stock-reason": "intake", "stock-note": "Druckerei Dortmund"})
    assert ok.status_code == 302
    too_many = client.post(url, data={"action": "stock", "stock-edition_id": edition.id,
                                      "stock-quantity": "-501", "stock-reason": "correction"})
    assert "Nur noch 500 Exemplare vorhanden" in too_many.get_data(as_text=True)
    page = client.get(url).get_data(as_text=True)
    assert "Druckerei Dortmund" in page and "Jonas Weber" in page and "+500" in page
    assert db.session.get(Edition, edition.id).stock_on_hand == 500
    assert db.session.scalar(select(func.count()).select_from(StockEntry)) == 1


def test_staff_add_units_with_unique_codes(client, make_material, make_user, login):
    kit = make_material(returnable=True, units={"de": ["AK-01"]})
    login(make_user(Role.STAFF))
    url = f"/materials/{kit.id}/manage"
    edition_id = kit.editions[0].id
    assert client.post(url, data={"action": "unit", "unit-edition_id": edition_id,
                                  "unit-inventory_code": "ak-02"}).status_code == 302
    taken = client.post(url, data={"action": "unit", "unit-edition_id": edition_id, "unit-inventory_code": "AK-01"})
    assert "Die Inventarnummer AK-01 ist schon vergeben." in taken.get_data(as_text=True)
    odd = client.post(url, data={"action": "unit", "unit-edition_id": edition_id, "unit-inventory_code": "<x>"})
    assert "Verwenden Sie nur Buchstaben" in odd.get_data(as_text=True)
    assert sorted(db.session.scalars(select(Unit.inventory_code))) == ["AK-01", "AK-02"]


def test_edition_choice_starts_with_the_page_language(client, make_material, make_user, login):
    material = make_material(editions={"ar": 5, "de": 5, "en": 5})
    login(make_user(Role.PARTNER))
    def options(page):
        start = page.index('name="edition_id"')
        return page[start:page.index("</select>", start)]

    select = options(client.get(f"/materials/{material.id}").get_data(as_text=True))
    assert select.index(">Deutsch<") < select.index(">Arabisch<") < select.index(">Englisch<")
    client.post("/language", data={"lang": "en", "next": "/"})
    select = options(client.get(f"/materials/{material.id}").get_data(as_text=True))
    assert select.index(">English<") < select.index(">German<") < select.index(">Arabic<")


IMPORT_CSV = (
    "\ufefftitle;kind;languages;stock;units;topics;target_groups;year\r\n"
    "Ratgeber Mietvertrag;brochure;de, tr;de=300, tr=50;;Vermietung;everyone;2025\r\n"
    "Ausstellung Nachbarn;exhibition;de;;de=an-01 AN-02;Nachbarschaft;;\r\n"
    ";brochure;de;;;;;\r\n"
    "Ratgeber Mietvertrag;brochure;de;de=1;;;;\r\n"
    "Plakat X;castle;de;;;;;\r\n"
    "Flyer Y;brochure;de;en=5;;;;\r\n"
    "Flyer Z;brochure;de;de=viele;;;;\r\n"
    "Koffer Q;method-kit;de;;de=AN-01;;;\r\n"
)


def upload(client, content: bytes, name="katalog.csv"):
    import io

    return client.post("/materials/import", data={"file": (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


def test_csv_import_reports_accepted_and_refused_rows(client, make_user, login):
    login(make_user(Role.STAFF))
    page = upload(client, IMPORT_CSV.encode("utf-8")).get_data(as_text=True)
    assert "2 Zeilen übernommen, 6 Zeilen abgewiesen." in page
    for reason in ("Der Titel fehlt.", "„Ratgeber Mietvertrag“ ist schon im Katalog.", "Unbekannte Art „castle“",
                   "Bestand für en, aber diese Sprache ist nicht aufgeführt.",
                   "stock: Geben Sie eine ganze Zahl von 0 bis 1000000 ein."):
        assert reason in page, reason
    brochure = db.session.scalar(select(Material).where(Material.title == "Ratgeber Mietvertrag"))
    assert {e.language: e.stock_on_hand for e in brochure.editions} == {"de": 300, "tr": 50}
    assert db.session.scalar(select(func.count()).select_from(StockEntry)) == 2  # ledger entries for the intake
    kit = db.session.scalar(select(Material).where(Material.title == "Ausstellung Nachbarn"))
    assert sorted(u.inventory_code for u in kit.editions[0].units) == ["AN-01", "AN-02"]
    assert db.session.scalar(select(func.count()).select_from(Material)) == 2  # refused rows left nothing


def test_csv_import_refuses_extreme_values_row_by_row(client, make_user, login):
    """Values beyond what the columns hold are refused with a reason (PostgreSQL refused them with a 500)."""
    login(make_user(Role.STAFF))
    rows = ["title;kind;year;stock;units;loan_days_max;per_request_max",
            "Jahr;brochure;99999999999;;;;", "Bestand;brochure;;de=99999999999;;;", "Leihe;exhibition;;;;99999999;",
            "Menge;brochure;;;;;3000000000", "Nul\x00l;brochure;;;;;", f"{'T' * 301};brochure;;;;;",
            f"Code;exhibition;;;de={'C' * 51};;", "Gut;brochure;2024;de=10;;;5"]
    page = upload(client, "\n".join(rows).encode()).get_data(as_text=True)
    assert "1 Zeilen übernommen, 7 Zeilen abgewiesen." in page or "1 Zeile übernommen, 7 Zeilen abgewiesen." in page
    for reason in ("year: Geben Sie eine ganze Zahl von 1950 bis 2100 ein.", "Steuerzeichen", "länger als 300 Zeichen",
                   "ist keine Inventarnummer", "loan_days_max: Geben Sie eine ganze Zahl von 1 bis 365 ein."):
        assert reason in page, reason
    assert db.session.scalars(select(Material.title)).all() == ["Gut"]


def test_csv_import_refuses_broken_files_whole(client, make_user, login, monkeypatch):
    from materials import catalogue_import

    monkeypatch.setattr(catalogue_import, "IMPORT_MAX_BYTES", 1000)  # a small file stands in for a huge one
    login(make_user(Role.STAFF))
    assert "kein UTF-8-Text" in upload(client, "Titel;Art\nÄrger;x\n".encode("latin-1")).get_data(as_text=True)
    assert "title und kind sind Pflicht" in upload(client, b"name;typ\nA;B\n").get_data(as_text=True)
    assert "Laden Sie eine .csv-Datei hoch." in upload(client, b"x", name="bild.png").get_data(as_text=True)
    assert "größer als 2 MB" in upload(client, b"title;kind\n" + b"x" * 1001).get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Material)) == 0


def test_cover_image_and_pdf_upload(app, client, make_material, make_user, login):
    import io

    from PIL import Image

    material = make_material(title="Wegweiser")
    login(make_user(Role.STAFF))
    png = io.BytesIO()
    Image.new("RGB", (1200, 1600), (11, 85, 99)).save(png, "PNG")
    url = f"/materials/{material.id}/files"

    def send(**files):
        data = {name: (io.BytesIO(content), filename) for name, (content, filename) in files.items()}
        return client.post(url, data=data, content_type="multipart/form-data", follow_redirects=True)

    assert "Das ist kein Bild" in send(cover=(b"not an image at all", "titel.png")).get_data(as_text=True)
    assert "Laden Sie ein JPEG-, PNG- oder WebP-Bild hoch." in send(cover=(png.getvalue(), "titel.gif")).get_data(as_text=True)
    assert "Das ist keine PDF-Datei." in send(pdf=(b"<html>", "flyer.pdf")).get_data(as_text=True)
    db.session.refresh(material)
    assert (material.cover_path, material.pdf_path) == ("", "")

    assert send(cover=(png.getvalue(), "titel.png"), pdf=(b"%PDF-1.7\n%demo\n", "flyer.pdf")).status_code == 200
    db.session.refresh(material)
    with client.get(f"/materials/{material.id}/cover.jpg?size=thumb") as thumb:
        assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.get_data())).size) <= 320
    with client.get(f"/materials/{material.id}/cover.jpg") as full:
        assert Image.open(io.BytesIO(full.get_data())).size == (1200, 1600)
    with client.get(f"/materials/{material.id}/download.pdf") as pdf:
        assert pdf.get_data().startswith(b"%PDF-") and "wegweiser.pdf" in pdf.headers["Content-Disposition"]
    page = client.get(f"/materials/{material.id}").get_data(as_text=True)
    assert 'alt="Titelbild von Wegweiser"' in page and "PDF herunterladen" in page


def png_of(width: int, height: int) -> bytes:
    """A black-and-white PNG of any size in a few kilobytes, made without decoding it (as an attacker would)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer, row = zlib.compressobj(9), b"\x00" + bytes((width + 7) // 8)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_decoding_and_big_photos_are_scaled(app, client, make_material,
                                                                                   make_user, login):
    import io
    from pathlib import Path

    from PIL import Image

    material = make_material(title="Wegweiser")
    login(make_user(Role.STAFF))
    bomb = png_of(13_000, 13_000)
    assert len(bomb) < 60_000

    def send(content: bytes):
        data = {"cover": (io.BytesIO(content), "titel.png")}
        return client.post(f"/materials/{material.id}/files", data=data, content_type="multipart/form-data",
                           follow_redirects=True)

    page = send(bomb).get_data(as_text=True)
    assert "Das Bild hat 169 Megapixel; höchstens 12 werden angenommen." in page
    db.session.refresh(material)
    uploads = Path(app.config["UPLOAD_FOLDER"])
    assert material.cover_path == "" and not (uploads.exists() and any(uploads.iterdir()))
    assert send(png_of(4_000, 3_000)).status_code == 200  # 12 megapixels, the most a PNG may have: scaled down
    db.session.refresh(material)
    assert material.cover_path.startswith(f"cover-{material.id}-") and "titel" not in material.cover_path
    with client.get(f"/materials/{material.id}/cover.jpg") as full:
        assert Image.open(io.BytesIO(full.get_data())).size == (2400, 1800)
    # A new cover has a new address, so no cache shows the old one for a day.
    first = re.search(r'src="([^"]*cover\.jpg[^"]*)"', client.get(f"/materials/{material.id}").get_data(as_text=True))
    assert send(png_of(300, 400)).status_code == 200
    second = re.search(r'src="([^"]*cover\.jpg[^"]*)"', client.get(f"/materials/{material.id}").get_data(as_text=True))
    assert first and second and first.group(1) != second.group(1)
    history = client.get(f"/materials/{material.id}/manage").get_data(as_text=True)
    assert "Titelbild" in history and ">cover<" not in history


def test_staff_edit_kit_contents_and_retire_units(client, make_material, make_user, login):
    from materials.bookings import book_unit
    from materials.forms import parse_contents

    assert parse_contents("4 × Roll-up-Display\n\n2 x Koffer\nBegleitheft") == [
        ("Roll-up-Display", 4), ("Koffer", 2), ("Begleitheft", 1)]
    kit = make_material(title="Ausstellung", returnable=True, units={"de": ["A-1", "A-2"]})
    login(make_user(Role.STAFF))
    form = {"title": "Ausstellung", "kind": "exhibition", "lending": "returnable", "languages": "de",
            "buffer_days": "2"}
    bad = client.post(f"/materials/{kit.id}/edit", data=form | {"contents": "viele × Tafeln"})
    assert "schreiben Sie die Zahl" in bad.get_data(as_text=True)
    client.post(f"/materials/{kit.id}/edit", data=form | {"contents": "6 × Roll-up-Display\n1 × Transportkiste"})
    db.session.refresh(kit)
    assert [(c.name, c.quantity) for c in kit.contents] == [("Roll-up-Display", 6), ("Transportkiste", 1)]
    assert "6 × Roll-up-Display" in client.get(f"/materials/{kit.id}/edit").get_data(as_text=True)

    a1, a2 = kit.editions[0].units
    book_unit(a1.id, date(2030, 1, 1), date(2030, 1, 3))
    db.session.commit()
    busy = client.post(f"/materials/units/{a1.id}/retire", follow_redirects=True)
    assert "gebucht oder ausgeliehen" in busy.get_data(as_text=True)
    asked = client.get(f"/materials/units/{a1.id}/retire", follow_redirects=True).get_data(as_text=True)
    assert "gebucht oder ausgeliehen" in asked and "Exemplar ausmustern</button>" not in asked  # refused at once
    assert f'href="/materials/units/{a2.id}/retire"' in client.get(f"/materials/units/{a2.id}").get_data(as_text=True)
    asked = client.get(f"/materials/units/{a2.id}/retire").get_data(as_text=True)
    assert "A-2 kann dauerhaft nicht mehr gebucht" in asked and "Niemand erhält eine E-Mail." in asked
    db.session.refresh(a2)
    assert a2.retired_at is None  # asking changed nothing
    client.post(f"/materials/units/{a2.id}/retire")
    db.session.refresh(a2)
    assert a2.retired_at is not None and not a2.bookable


def test_topics_get_an_english_name_that_english_pages_show_and_the_search_finds(client, login, make_material,
                                                                                   make_user):
    """Issue 16.2: topics had only their German name, so "neighbourhood" found nothing. Staff give the
    English name on the topics page; the English catalogue shows it, the search finds both names, a
    name another topic has is refused with nothing changed, and the change is in the audit trail."""
    from core.audit import AuditEntry
    from materials.models import Topic

    staff = make_user(Role.STAFF)
    neighbours = make_material(title="Gute Nachbarschaft", editions={"de": 3})
    other = make_material(title="Mietrecht kompakt", editions={"de": 3})
    save_material(neighbours.id, ["Nachbarschaft"], ["de"], staff, title=neighbours.title)
    save_material(other.id, ["Recht"], ["de"], staff, title=other.title)
    topic = db.session.scalar(select(Topic).where(Topic.name == "Nachbarschaft"))
    assert "Gute Nachbarschaft" not in titles(client, q="neighbourhood")

    login(staff)
    page = client.get("/materials/topics").get_data(as_text=True)
    assert "Nachbarschaft" in page and "1 Material" in page
    taken = client.post(f"/materials/topics/{topic.id}", data={f"t{topic.id}-name": "Recht",
                                                               f"t{topic.id}-name_en": "Neighbourhood"})
    assert taken.status_code == 422 and "heißt schon" in taken.get_data(as_text=True)
    assert 'value="Neighbourhood"' in taken.get_data(as_text=True)  # what was typed stays
    db.session.expire_all()
    assert db.session.get(Topic, topic.id).name_en == ""

    saved = client.post(f"/materials/topics/{topic.id}", data={f"t{topic.id}-name": "Nachbarschaft",
                                                               f"t{topic.id}-name_en": "Neighbourhood"})
    assert saved.status_code == 302
    for q in ("neighbourhood", "Neighbour", "nachbarschaft"):
        page = titles(client, q=q)
        assert "Gute Nachbarschaft" in page and "Mietrecht kompakt" not in page, q
    client.post("/language", data={"lang": "en", "next": "/"})
    english = client.get(f"/materials/{neighbours.id}").get_data(as_text=True)
    assert ">Neighbourhood</a>" in english
    assert ">Neighbourhood</option>" in titles(client)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.object_type == "topic"))
    assert entry.object_id == topic.id and "Neighbourhood" in entry.details


def test_a_topic_name_that_folds_too_long_is_refused_with_a_message(client, login, make_material, make_user):
    """Review of issue 16: "ß" folds to "ss", so 100 of them made a 200-letter slug, a 500 on PostgreSQL."""
    from materials.models import Topic

    staff = make_user(Role.STAFF)
    material = make_material(title="Straßen", editions={"de": 1})
    save_material(material.id, ["Straße"], ["de"], staff, title=material.title)
    topic = db.session.scalar(select(Topic).where(Topic.name == "Straße"))
    login(staff)
    refused = client.post(f"/materials/topics/{topic.id}", data={f"t{topic.id}-name": "ß" * 100,
                                                                 f"t{topic.id}-name_en": ""})
    assert refused.status_code == 422 and "zu lang für ein Thema" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Topic, topic.id).name == "Straße"
    from materials.errors import MaterialsError
    with pytest.raises(MaterialsError, match="zu lang für ein Thema") as too_long:  # on a material's form too
        save_material(material.id, ["ß" * 100], ["de"], staff, title=material.title)
    assert too_long.value.field == "topics"
