"""Rules for the KYC documents a trader uploads: which kinds, which files, how big, and the
fingerprint that spots one identity document used by two traders (COMPLIANCE.md §3.3).

Pure functions: the API calls `validate_document` before it stores anything. Images and PDFs
are decoded with real parsers (Pillow, pypdf): a file that only starts like a JPEG or a PDF is
refused.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from enum import StrEnum
from io import BytesIO

from PIL import Image
from pypdf import PdfReader
from pypdf.generic import DictionaryObject, IndirectObject

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024  # 10 MiB: a phone photo or a scanned PDF fits
# A 50-megapixel phone photo fits; beyond that an image is a decompression bomb, not a document.
MAX_IMAGE_PIXELS = 64_000_000


class DocumentKind(StrEnum):
    PASSPORT = "PASSPORT"
    ID_CARD = "ID_CARD"
    DRIVERS = "DRIVERS"  # driving licence
    UTILITY_BILL = "UTILITY_BILL"
    BANK_STATEMENT = "BANK_STATEMENT"


IDENTITY_DOCUMENT_TYPES: frozenset[str] = frozenset(
    {DocumentKind.PASSPORT, DocumentKind.ID_CARD, DocumentKind.DRIVERS}
)
PROOF_OF_ADDRESS_TYPES: frozenset[str] = frozenset(
    {DocumentKind.UTILITY_BILL, DocumentKind.BANK_STATEMENT}
)

# The first bytes of each accepted format. A declared type must match the bytes, so a renamed
# executable or HTML page never reaches a reviewer's browser as an "image".
_MAGIC: dict[str, bytes] = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "application/pdf": b"%PDF-",
}
ALLOWED_CONTENT_TYPES: frozenset[str] = frozenset(_MAGIC)
# Non-standard names some browsers and phones still send for JPEG.
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


class DocumentRejected(Exception):
    """An upload that breaks a rule. `reason_code` is stable and machine-readable:
    unknown_kind, empty, too_large, unsupported_type, type_mismatch, unreadable,
    active_content, invalid_country, invalid_number."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def is_identity_document(kind: str) -> bool:
    return kind in IDENTITY_DOCUMENT_TYPES


def normalize_content_type(content_type: str) -> str:
    """Lower-case, parameters dropped, aliases resolved: 'Image/JPG; q=1' → 'image/jpeg'."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def sniff_content_type(content: bytes) -> str | None:
    """The accepted format these bytes start with, or None."""
    for content_type, magic in _MAGIC.items():
        if content.startswith(magic):
            return content_type
    return None


def validate_document(kind: str, content_type: str, content: bytes) -> None:
    """Raise DocumentRejected unless this is an accepted document of a known kind."""
    if kind not in IDENTITY_DOCUMENT_TYPES | PROOF_OF_ADDRESS_TYPES:
        raise DocumentRejected("unknown_kind", f"unknown document kind {kind!r}")
    if not content:
        raise DocumentRejected("empty", "the file is empty")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise DocumentRejected(
            "too_large", f"the file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB"
        )
    declared = normalize_content_type(content_type)
    if declared not in ALLOWED_CONTENT_TYPES:
        raise DocumentRejected(
            "unsupported_type",
            f"{declared or 'no content type'} is not accepted; use JPEG, PNG or PDF",
        )
    actual = sniff_content_type(content)
    if actual != declared:
        raise DocumentRejected(
            "type_mismatch",
            f"the file is declared as {declared} but its content is "
            + (actual or "not a JPEG, PNG or PDF"),
        )
    if declared == "application/pdf":
        _check_pdf(content)
    else:
        _check_image(content, "JPEG" if declared == "image/jpeg" else "PNG")


def _check_image(content: bytes, image_format: str) -> None:
    """Decodes every pixel (JPEG at 1/8 scale: still every block of the stream)."""
    try:
        with Image.open(BytesIO(content), formats=[image_format]) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise DocumentRejected(
                    "too_large", f"the image has more than {MAX_IMAGE_PIXELS:,} pixels"
                )
            if image_format == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except DocumentRejected:
        raise
    except Exception as exc:  # Pillow's decoders raise many types; any of them means "not an image"
        raise DocumentRejected(
            "unreadable", f"the file is not a readable {image_format} image"
        ) from exc


def _check_pdf(content: bytes) -> None:
    """Parses the document and each page's content; refuses encryption and scripts."""
    try:
        reader = PdfReader(BytesIO(content))
        if reader.is_encrypted:
            raise DocumentRejected(
                "unreadable", "the PDF is encrypted; upload it without a password"
            )
        pages = reader.pages
        if len(pages) == 0:
            raise DocumentRejected("unreadable", "the PDF has no pages")
        for page in pages:
            page.get_contents()
        if _has_script(reader):
            raise DocumentRejected("active_content", "the PDF contains JavaScript")
    except DocumentRejected:
        raise
    except Exception as exc:  # pypdf raises many types for a damaged file
        raise DocumentRejected("unreadable", "the file is not a readable PDF") from exc


def _has_script(reader: PdfReader) -> bool:
    """JavaScript run on opening: the catalog's named scripts, open action or its actions."""
    catalog = reader.root_object
    names = catalog.get("/Names")
    if isinstance(names, IndirectObject):
        names = names.get_object()
    if isinstance(names, DictionaryObject) and "/JavaScript" in names:
        return True
    if "/AA" in catalog:
        return True
    action = catalog.get("/OpenAction")
    if isinstance(action, IndirectObject):
        action = action.get_object()
    return isinstance(action, DictionaryObject) and action.get("/S") == "/JavaScript"


def identity_document_fingerprint(
    doc_type: str, country: str, number: str, *, pepper: bytes | None = None
) -> str:
    """A 64-hex digest that is equal for the same identity document however it was typed.

    The number keeps only letters and digits, upper-cased after Unicode NFKC (so "ab 12-34",
    "AB1234" and the full-width forms agree). Pass the country in one form everywhere (fxcrm
    stores ISO alpha-2). Document numbers are short enough to brute-force a plain hash; with a
    `pepper` (a secret key) the digest is an HMAC that cannot be reversed without the key.
    """
    kind = doc_type.strip().upper()
    if kind not in IDENTITY_DOCUMENT_TYPES:
        raise DocumentRejected("unknown_kind", f"{doc_type!r} is not an identity document")
    code = country.strip().upper()
    if not (2 <= len(code) <= 3 and code.isascii() and code.isalpha()):
        raise DocumentRejected("invalid_country", f"invalid issuing country {country!r}")
    normalized = "".join(ch for ch in unicodedata.normalize("NFKC", number) if ch.isalnum())
    normalized = normalized.upper()
    if not normalized:
        raise DocumentRejected("invalid_number", "the document number has no letters or digits")
    message = f"v1|{kind}|{code}|{normalized}".encode()
    if pepper:
        return hmac.new(pepper, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()
