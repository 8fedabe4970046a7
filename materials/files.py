"""Cover images and PDF downloads of materials."""

import io
import secrets
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

from core.extensions import db
from materials.errors import MaterialsError
from materials.models import Material

COVER_MAX_BYTES = 5 * 1024 * 1024


PDF_MAX_BYTES = 15 * 1024 * 1024


THUMBNAIL_SIZE = (320, 320)


def upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_FOLDER"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_cover(material: Material, data: bytes) -> None:
    """Store a cover image re-encoded (no metadata kept) with a thumbnail; refuse anything else."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > COVER_MAX_BYTES:
        raise MaterialsError(_l("The image is larger than 5 MB."), field="cover")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise MaterialsError(_l("This is not an image (JPEG, PNG or WebP)."), field="cover") from None
    if image.format not in ("JPEG", "PNG", "WEBP"):
        raise MaterialsError(_l("This is not an image (JPEG, PNG or WebP)."), field="cover")
    image = image.convert("RGB")
    name = f"cover-{material.id}-{secrets.token_hex(4)}"
    directory = upload_dir()
    image.save(directory / f"{name}.jpg", "JPEG", quality=85)
    image.thumbnail(THUMBNAIL_SIZE)
    image.save(directory / f"{name}-thumb.jpg", "JPEG", quality=80)
    old = material.cover_path
    material.cover_path = name
    db.session.commit()
    if old:
        for suffix in (".jpg", "-thumb.jpg"):
            (directory / f"{old}{suffix}").unlink(missing_ok=True)


def save_pdf(material: Material, data: bytes) -> None:
    """Store the material's PDF download."""
    if len(data) > PDF_MAX_BYTES:
        raise MaterialsError(_l("The PDF is larger than 15 MB."), field="pdf")
    if not data.startswith(b"%PDF-"):
        raise MaterialsError(_l("This is not a PDF file."), field="pdf")
    name = f"pdf-{material.id}-{secrets.token_hex(4)}.pdf"
    (upload_dir() / name).write_bytes(data)
    old = material.pdf_path
    material.pdf_path = name
    db.session.commit()
    if old:
        (upload_dir() / old).unlink(missing_ok=True)
