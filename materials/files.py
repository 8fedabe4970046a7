"""Cover images and PDF downloads of materials."""

import io
import secrets
import warnings
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

from accounts.models import User
from core import audit
from core.db import after_commit, on_rollback, unit_of_work
from core.states import lock
from materials.errors import MaterialsError
from materials.models import Material

COVER_MAX_BYTES = 5 * 1024 * 1024
# Checked from the file's header before any pixel is decoded: a few kilobytes of PNG can describe
# 169 megapixels (and take most of a gigabyte to decode). A JPEG decodes at a reduced scale (its
# draft mode), so any camera photo fits; a PNG or WebP decodes whole, at up to 4 bytes a pixel.
COVER_MAX_PIXELS = {"JPEG": 60_000_000, "PNG": 12_000_000, "WEBP": 12_000_000}  # at most ~150 MB to decode
COVER_MAX_SIDE = 2400  # the stored cover; the page shows it far smaller
THUMBNAIL_SIZE = (320, 320)
PDF_MAX_BYTES = 15 * 1024 * 1024


def upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_FOLDER"])
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    directory = upload_dir()
    image.save(directory / f"{name}.jpg", "JPEG", quality=85)
    image.thumbnail(THUMBNAIL_SIZE)
    image.save(directory / f"{name}-thumb.jpg", "JPEG", quality=80)
    return name


def _store_pdf(material: Material, data: bytes) -> str:
    """Store the material's PDF download."""
    if len(data) > PDF_MAX_BYTES:
        raise MaterialsError(_l("The PDF is larger than 15 MB."), field="pdf")
    if not data.startswith(b"%PDF-"):
        raise MaterialsError(_l("This is not a PDF file."), field="pdf")
    name = f"pdf-{material.id}-{secrets.token_hex(4)}.pdf"
    (upload_dir() / name).write_bytes(data)
    return name


def _remove(*names: str) -> None:
    for name in names:
        (upload_dir() / name).unlink(missing_ok=True)


@unit_of_work
def save_files(material_id: int, actor: User, cover: bytes | None = None, pdf: bytes | None = None) -> Material:
    """Replace a material's cover image and/or PDF. The files replaced are removed once the change is
    committed; the new ones, if the change is refused."""
    material = lock(Material, material_id)
    done = []
    if cover:
        name = _store_cover(material, cover)
        on_rollback(_remove, f"{name}.jpg", f"{name}-thumb.jpg")
        if material.cover_path:
            after_commit(_remove, f"{material.cover_path}.jpg", f"{material.cover_path}-thumb.jpg")
        material.cover_path = name
        done.append("cover")
    if pdf:
        name = _store_pdf(material, pdf)
        on_rollback(_remove, name)
        if material.pdf_path:
            after_commit(_remove, material.pdf_path)
        material.pdf_path = name
        done.append("pdf")
    if done:
        audit.record(actor, "files", material, details=", ".join(done))
    return material
