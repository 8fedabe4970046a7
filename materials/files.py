"""Cover images and PDF downloads of materials: checked, stored in the database, served.

Files live in ``stored_files``, not on a disk: every app host serves what any of them stored, a
database backup holds them, and a file comes and goes in the transaction of the material's change (a
refused change leaves no file behind, a replaced one is gone with the commit). A name is never used
again (the material's id and a random part), so what a name serves never changes: pages link a file
with ``?v=`` naming it (``version``), and such an address is cached for a year. ``flask --app app
files import`` moves files of an older Fundus from ``UPLOAD_FOLDER`` into the database.
"""

import hashlib
import io
import secrets
import warnings
from pathlib import Path

import click
from flask import Response, abort, current_app, request
from flask.cli import AppGroup
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from accounts.models import User
from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.security import may_be_signed_in
from core.states import lock
from materials.errors import MaterialsError
from materials.models import Material, StoredFile

COVER_MAX_BYTES = 5 * 1024 * 1024
# Checked from the file's header before any pixel is decoded: a few kilobytes of PNG can describe
# 169 megapixels (and take most of a gigabyte to decode). A JPEG decodes at a reduced scale (its
# draft mode), so any camera photo fits; a PNG or WebP decodes whole, at up to 4 bytes a pixel.
COVER_MAX_PIXELS = {"JPEG": 60_000_000, "PNG": 12_000_000, "WEBP": 12_000_000}  # at most ~150 MB to decode
COVER_MAX_SIDE = 2400  # the stored cover; the page shows it far smaller
THUMBNAIL_SIZE = (320, 320)
PDF_MAX_BYTES = 15 * 1024 * 1024


JPEG = "image/jpeg"
PDF = "application/pdf"
YEAR = 365 * 24 * 3600


def _put(name: str, content_type: str, data: bytes) -> None:
    db.session.add(StoredFile(name=name, content_type=content_type, size=len(data),
                              digest=hashlib.sha256(data).hexdigest(), content=data))


def _jpeg(image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _store_cover(material: Material, data: bytes) -> str:
    """Store a cover image re-encoded (no metadata kept, turned upright) at most ``COVER_MAX_SIDE``
    pixels wide and high, with a thumbnail; refuse anything else. The stored names come from the
    material and a random part, never from the upload."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    not_an_image = MaterialsError(_l("This is not an image (JPEG, PNG or WebP)."), field="cover")
    if len(data) > COVER_MAX_BYTES:
        raise MaterialsError(_l("The image is larger than 5 MB."), field="cover")
    try:
        with warnings.catch_warnings():  # Pillow warns of a bomb when opening; the check below refuses it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))  # reads the header only
        with probe:
            if probe.format not in COVER_MAX_PIXELS:
                raise not_an_image
            width, height = probe.size
            limit = COVER_MAX_PIXELS[probe.format]
            if width * height > limit:
                raise MaterialsError(_l("The image has %(megapixels)s megapixels; at most %(limit)s are accepted. "
                                        "Please make it smaller.", megapixels=round(width * height / 1e6),
                                        limit=limit // 1_000_000), field="cover")
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (COVER_MAX_SIDE, COVER_MAX_SIDE))  # a JPEG decodes at a reduced scale
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise not_an_image from None
    # Made small first, so the copies that follow are small.
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA")
    image.thumbnail((COVER_MAX_SIDE, COVER_MAX_SIDE))
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGBA":  # transparent parts white, as on paper
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image = image.convert("RGB")
    name = f"cover-{material.id}-{secrets.token_hex(4)}"
    _put(f"{name}.jpg", JPEG, _jpeg(image, 85))
    image.thumbnail(THUMBNAIL_SIZE)
    _put(f"{name}-thumb.jpg", JPEG, _jpeg(image, 80))
    return name


def _store_pdf(material: Material, data: bytes) -> str:
    """Store the material's PDF download."""
    if len(data) > PDF_MAX_BYTES:
        raise MaterialsError(_l("The PDF is larger than 15 MB."), field="pdf")
    if not data.startswith(b"%PDF-"):
        raise MaterialsError(_l("This is not a PDF file."), field="pdf")
    name = f"pdf-{material.id}-{secrets.token_hex(4)}.pdf"
    _put(name, PDF, data)
    return name


def cover_names(cover_path: str) -> list[str]:
    """The stored files of a material's cover: the image and its thumbnail."""
    return [f"{cover_path}.jpg", f"{cover_path}-thumb.jpg"] if cover_path else []


def _remove(*names: str) -> None:
    db.session.execute(delete(StoredFile).where(StoredFile.name.in_(names)))


def version(path: str) -> str:
    """The random part of a material's ``cover_path`` or ``pdf_path``, new with every upload: pages put it into
    the file's address as ``?v=``."""
    return path.removesuffix(".pdf")[-8:]


def serve(name: str, current_version: str, download_name: str | None = None) -> Response:
    """The stored file ``name``, with its digest as ETag (a 304 reads no content) and byte ranges (a PDF viewer
    asks for parts). An address carrying the file's ``current_version`` is kept a year by browsers and proxies
    (the name never serves other bytes); without it, a day, asked again with the ETag after that. Private if
    the visitor may be signed in (a staff member may see a draft's cover)."""
    head = db.session.execute(select(StoredFile.content_type, StoredFile.digest)
                              .where(StoredFile.name == name)).one_or_none()
    if head is None:
        abort(404)
    content_type, digest = head
    if request.if_none_match.contains_weak(digest):
        response = Response(status=304)
    else:
        content = db.session.scalar(select(StoredFile.content).where(StoredFile.name == name))
        if content is None:  # replaced between the two reads: its name is gone for good
            abort(404)
        response = Response(content, mimetype=content_type)
        if download_name:
            response.headers.set("Content-Disposition", "attachment", filename=download_name)
    response.set_etag(digest)
    response.cache_control.max_age = YEAR if request.args.get("v") == current_version else 86400
    response.cache_control.immutable = response.cache_control.max_age == YEAR
    if may_be_signed_in():
        response.cache_control.private = True
    else:
        response.cache_control.public = True
    if response.status_code == 200:
        response.make_conditional(request, accept_ranges=True, complete_length=len(content))
    return response


@unit_of_work
def save_files(material_id: int, actor: User, cover: bytes | None = None, pdf: bytes | None = None) -> Material:
    """Replace a material's cover image and/or PDF, the files replaced going in the same transaction."""
    material = lock(Material, material_id)
    done = []
    if cover:
        name = _store_cover(material, cover)
        if material.cover_path:
            _remove(*cover_names(material.cover_path))
        material.cover_path = name
        done.append("cover")
    if pdf:
        name = _store_pdf(material, pdf)
        if material.pdf_path:
            _remove(material.pdf_path)
        material.pdf_path = name
        done.append("pdf")
    if done:
        audit.record(actor, "files", material, details=", ".join(done))
    return material


files_cli = AppGroup("files", help="Uploaded covers and PDFs.")


@files_cli.command("import")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path),
              help="Where the files lie (default: UPLOAD_FOLDER, else instance/uploads).")
def import_command(folder: Path | None):
    """Move the covers and PDFs of an older Fundus from a folder into the database. The upgrade does it for
    UPLOAD_FOLDER on the host it runs on; this is for files elsewhere (running it again imports nothing
    twice). The folder is left as it was: delete it once the pages show the files."""
    from core.db import ensure_schema

    ensure_schema()
    imported, missing = import_folder(folder or Path(current_app.config["UPLOAD_FOLDER"]))
    click.echo(f"{imported} files imported into the database, {len(missing)} missing from the folder")
    for name in missing:
        click.echo(f"missing: {name}")
    if missing:  # the materials name files nobody has: say so to a script too
        raise SystemExit(1)


@unit_of_work
def import_folder(folder: Path) -> tuple[int, list[str]]:
    """Store every file the materials name that the database lacks, from ``folder``."""
    wanted: dict[str, str] = {}
    for cover_path, pdf_path in db.session.execute(select(Material.cover_path, Material.pdf_path)):
        wanted.update(dict.fromkeys(cover_names(cover_path), JPEG))
        if pdf_path:
            wanted[pdf_path] = PDF
    have = set(db.session.scalars(select(StoredFile.name).where(StoredFile.name.in_(wanted)))) if wanted else set()
    imported, missing = 0, []
    for name in sorted(set(wanted) - have):
        path = folder / name
        if not path.is_file():
            missing.append(name)
            continue
        _put(name, wanted[name], path.read_bytes())
        db.session.flush()  # one file in memory at a time
        db.session.expunge_all()
        imported += 1
    return imported, missing
