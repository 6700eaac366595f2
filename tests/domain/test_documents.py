"""Document upload rules and the identity-document fingerprint."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from fxcrm.domain.documents import (
    ALLOWED_CONTENT_TYPES,
    IDENTITY_DOCUMENT_TYPES,
    MAX_DOCUMENT_BYTES,
    PROOF_OF_ADDRESS_TYPES,
    DocumentKind,
    DocumentRejected,
    identity_document_fingerprint,
    is_identity_document,
    normalize_content_type,
    sniff_content_type,
    validate_document,
)
from tests import documents

JPEG = documents.jpeg()
PNG = documents.png()
PDF = documents.pdf()
HTML = b"<html><script>alert(document.cookie)</script></html>"


def _reason(kind: str, content_type: str, content: bytes) -> str:
    with pytest.raises(DocumentRejected) as err:
        validate_document(kind, content_type, content)
    assert str(err.value)  # a message for the trader
    return err.value.reason_code


def test_kinds_split_into_identity_and_proof_of_address() -> None:
    assert {"PASSPORT", "ID_CARD", "DRIVERS"} == IDENTITY_DOCUMENT_TYPES
    assert {"UTILITY_BILL", "BANK_STATEMENT"} == PROOF_OF_ADDRESS_TYPES
    assert set(DocumentKind) == IDENTITY_DOCUMENT_TYPES | PROOF_OF_ADDRESS_TYPES
    assert is_identity_document("PASSPORT")
    assert not is_identity_document("UTILITY_BILL")
    assert {"image/jpeg", "image/png", "application/pdf"} == ALLOWED_CONTENT_TYPES
    assert MAX_DOCUMENT_BYTES == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("kind", "content_type", "content"),
    [
        ("PASSPORT", "image/jpeg", JPEG),
        ("ID_CARD", "image/png", PNG),
        ("DRIVERS", "application/pdf", PDF),
        ("UTILITY_BILL", "application/pdf", PDF),
        ("BANK_STATEMENT", "IMAGE/JPEG; charset=binary", JPEG),
        ("PASSPORT", "image/jpg", JPEG),  # a common non-standard name
        (DocumentKind.PASSPORT, "image/png", PNG),
    ],
)
def test_accepted(kind: str, content_type: str, content: bytes) -> None:
    validate_document(kind, content_type, content)


def test_unknown_kind() -> None:
    assert _reason("SELFIE", "image/jpeg", JPEG) == "unknown_kind"
    assert _reason("passport", "image/jpeg", JPEG) == "unknown_kind"  # kinds are exact


def test_empty_file() -> None:
    assert _reason("PASSPORT", "image/jpeg", b"") == "empty"


def test_size_limit_is_inclusive() -> None:
    at_limit = JPEG + b"\x00" * (MAX_DOCUMENT_BYTES - len(JPEG))
    validate_document("PASSPORT", "image/jpeg", at_limit)
    assert _reason("PASSPORT", "image/jpeg", at_limit + b"\x00") == "too_large"


@pytest.mark.parametrize("content_type", ["image/gif", "text/html", "application/octet-stream", ""])
def test_unsupported_content_types(content_type: str) -> None:
    assert _reason("PASSPORT", content_type, JPEG) == "unsupported_type"


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("image/png", JPEG),  # declared PNG, bytes JPEG
        ("application/pdf", PNG),
        ("image/jpeg", b"<html><script>alert(1)</script></html>"),
        ("image/png", b"\x89PNG"),  # truncated signature
        ("application/pdf", b"MZ\x90\x00 executable"),
    ],
)
def test_declared_type_must_match_the_bytes(content_type: str, content: bytes) -> None:
    assert _reason("PASSPORT", content_type, content) == "type_mismatch"


def test_sniff_and_normalize() -> None:
    assert sniff_content_type(JPEG) == "image/jpeg"
    assert sniff_content_type(PNG) == "image/png"
    assert sniff_content_type(PDF) == "application/pdf"
    assert sniff_content_type(b"GIF89a") is None
    assert normalize_content_type(" Image/PNG ; x=y") == "image/png"
    assert normalize_content_type("image/pjpeg") == "image/jpeg"


# -- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_matches_a_hand_computed_digest() -> None:
    expected = hashlib.sha256(b"v1|PASSPORT|FR|12AB34567").hexdigest()
    assert identity_document_fingerprint("PASSPORT", "FR", "12AB34567") == expected
    assert len(expected) == 64  # fits kyc_documents.identity_fingerprint


FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "12AB34567")  # as some phone keyboards type


@pytest.mark.parametrize("number", ["12ab34567", " 12 AB 345 67 ", "12-AB-345.67", FULL_WIDTH])
def test_fingerprint_ignores_how_the_number_was_typed(number: str) -> None:
    reference = identity_document_fingerprint("PASSPORT", "FR", "12AB34567")
    assert identity_document_fingerprint(" passport ", "fr", number) == reference


def test_fingerprint_separates_documents() -> None:
    base = identity_document_fingerprint("PASSPORT", "FR", "12AB34567")
    assert identity_document_fingerprint("PASSPORT", "FR", "12AB34568") != base
    assert identity_document_fingerprint("PASSPORT", "DE", "12AB34567") != base
    assert identity_document_fingerprint("ID_CARD", "FR", "12AB34567") != base


def test_fingerprint_with_pepper_is_an_hmac() -> None:
    keyed = identity_document_fingerprint("PASSPORT", "FR", "12AB34567", pepper=b"secret")
    expected = hmac.new(b"secret", b"v1|PASSPORT|FR|12AB34567", hashlib.sha256).hexdigest()
    assert keyed == expected
    assert keyed != identity_document_fingerprint("PASSPORT", "FR", "12AB34567")


@pytest.mark.parametrize(
    ("doc_type", "country", "number", "reason"),
    [
        ("UTILITY_BILL", "FR", "123", "unknown_kind"),
        ("PASSPORT", "F", "123", "invalid_country"),
        ("PASSPORT", "F1", "123", "invalid_country"),
        ("PASSPORT", "FR", " -./ ", "invalid_number"),
    ],
)
def test_fingerprint_refuses_bad_input(
    doc_type: str, country: str, number: str, reason: str
) -> None:
    with pytest.raises(DocumentRejected) as err:
        identity_document_fingerprint(doc_type, country, number)
    assert err.value.reason_code == reason


# -- the bytes must decode, not only start right --------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + HTML),  # a JPEG header, then a page
        ("image/png", b"\x89PNG\r\n\x1a\n" + HTML),
        ("application/pdf", b"%PDF-1.7\n" + HTML),
        ("image/jpeg", JPEG[: len(JPEG) // 2]),  # cut short
        ("image/png", PNG[: len(PNG) // 2]),
        ("application/pdf", PDF[: len(PDF) // 2]),
    ],
)
def test_files_that_do_not_decode_are_refused(content_type: str, content: bytes) -> None:
    assert _reason("PASSPORT", content_type, content) == "unreadable"


@pytest.mark.parametrize("where", ["names", "open"])
def test_pdf_with_javascript_is_refused(where: str) -> None:
    assert _reason("UTILITY_BILL", "application/pdf", documents.pdf_with_script(where)) == (
        "active_content"
    )


def test_image_with_too_many_pixels_is_refused() -> None:
    # A few hundred bytes of PNG that would decode to 80 million pixels.
    huge = documents.image_of_size("PNG", (10_000, 8_000))
    assert len(huge) < MAX_DOCUMENT_BYTES
    assert _reason("PASSPORT", "image/png", huge) == "too_large"
