"""Sumsub webhook signatures and payload parsing: pure, no network."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from fxcrm.adapters.kyc.base import KycStatus
from fxcrm.adapters.kyc.sumsub import SumsubClient, request_signature

SECRET = "fxcrm-golden-secret"
BODY = (
    b'{"applicantId":"5cb56e8e0a975a35f333cb83","type":"applicantReviewed",'
    b'"reviewResult":{"reviewAnswer":"GREEN"},"reviewStatus":"completed",'
    b'"createdAtMs":"2020-02-21 13:23:19.321"}'
)
# Computed once with hmac by hand; a fixed vector catches a change on both sides at once.
GOLDEN_SHA256 = "4e5b78717db18670d2da986fffaaf620e9311da8a198355fefe80aee274efb60"


@pytest.fixture
def client() -> SumsubClient:
    return SumsubClient(
        base_url="http://unused", app_token="t", secret_key="k", webhook_secret=SECRET
    )


def _digest(body: bytes, hash_name: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hash_name).hexdigest()


def test_golden_vector_default_algorithm(client: SumsubClient) -> None:
    assert _digest(BODY, "sha256") == GOLDEN_SHA256
    assert client.verify_webhook({"X-Payload-Digest": GOLDEN_SHA256}, BODY)
    headers = {"X-Payload-Digest": GOLDEN_SHA256, "X-Payload-Digest-Alg": "HMAC_SHA256_HEX"}
    assert client.verify_webhook(headers, BODY)


@pytest.mark.parametrize(
    ("alg", "hash_name"),
    [("HMAC_SHA1_HEX", "sha1"), ("HMAC_SHA256_HEX", "sha256"), ("HMAC_SHA512_HEX", "sha512")],
)
def test_each_algorithm(client: SumsubClient, alg: str, hash_name: str) -> None:
    headers = {"X-Payload-Digest": _digest(BODY, hash_name), "X-Payload-Digest-Alg": alg}
    assert client.verify_webhook(headers, BODY)


def test_algorithm_header_must_match_the_digest(client: SumsubClient) -> None:
    headers = {"X-Payload-Digest": _digest(BODY, "sha1"), "X-Payload-Digest-Alg": "HMAC_SHA512_HEX"}
    assert not client.verify_webhook(headers, BODY)


@pytest.mark.parametrize("alg", ["HMAC_MD5_HEX", "SHA256", "none", ""])
def test_unknown_algorithm_is_refused(client: SumsubClient, alg: str) -> None:
    digest = hashlib.md5(BODY).hexdigest() if "MD5" in alg else _digest(BODY, "sha256")  # noqa: S324
    headers = {"X-Payload-Digest": digest, "X-Payload-Digest-Alg": alg}
    # An empty header value means "not given": the default algorithm then applies.
    assert client.verify_webhook(headers, BODY) is (alg == "")


def test_tampered_body_is_refused(client: SumsubClient) -> None:
    tampered = BODY.replace(b"GREEN", b"RED")
    assert not client.verify_webhook({"X-Payload-Digest": GOLDEN_SHA256}, tampered)
    # One extra space is a different body: the signature covers raw bytes, not parsed JSON.
    assert not client.verify_webhook({"X-Payload-Digest": GOLDEN_SHA256}, BODY + b" ")


def test_missing_or_empty_digest_is_refused(client: SumsubClient) -> None:
    assert not client.verify_webhook({}, BODY)
    assert not client.verify_webhook({"X-Payload-Digest": ""}, BODY)
    assert not client.verify_webhook({"X-Payload-Digest-Alg": "HMAC_SHA256_HEX"}, BODY)


def test_wrong_secret_and_empty_secret_are_refused() -> None:
    other = SumsubClient(base_url="http://x", app_token="t", secret_key="k", webhook_secret="other")
    assert not other.verify_webhook({"X-Payload-Digest": GOLDEN_SHA256}, BODY)
    blank = SumsubClient(base_url="http://x", app_token="t", secret_key="k", webhook_secret="")
    empty_key_digest = _digest(BODY, "sha256", secret="")
    assert not blank.verify_webhook({"X-Payload-Digest": empty_key_digest}, BODY)


def test_header_names_any_case_and_upper_case_hex(client: SumsubClient) -> None:
    headers = {"x-payload-digest": GOLDEN_SHA256.upper(), "x-payload-digest-alg": "HMAC_SHA256_HEX"}
    assert client.verify_webhook(headers, BODY)


def test_non_ascii_digest_is_refused_not_raised(client: SumsubClient) -> None:
    assert not client.verify_webhook({"X-Payload-Digest": "é" * 64}, BODY)


def test_request_signature_golden_vector() -> None:
    body = b'{"externalUserId":"t-1"}'
    path = "/resources/applicants?levelName=basic-kyc-level"
    by_hand = hmac.new(
        b"fxcrm-golden-key", b"1700000000" + b"POST" + path.encode() + body, hashlib.sha256
    ).hexdigest()
    assert by_hand == "634d247fd1b58bc9d25713c3bc3240679024549339cd2b179735526d32fc225c"
    assert request_signature("fxcrm-golden-key", "1700000000", "post", path, body) == by_hand


# -- parse_webhook --------------------------------------------------------------------------------


def _payload(**fields: object) -> bytes:
    base: dict[str, object] = {
        "applicantId": "5cb56e8e0a975a35f333cb83",
        "inspectionId": "5cb56e8e0a975a35f333cb84",
        "correlationId": "req-1",
        "externalUserId": "trader-1",
        "levelName": "basic-kyc-level",
        "reviewStatus": "completed",
        "createdAtMs": "2020-02-21 13:23:19.321",
    }
    base.update(fields)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    ("event_type", "result", "status"),
    [
        ("applicantReviewed", {"reviewAnswer": "GREEN"}, KycStatus.APPROVED),
        (
            "applicantReviewed",
            {
                "reviewAnswer": "RED",
                "reviewRejectType": "RETRY",
                "rejectLabels": ["SELFIE_MISMATCH"],
            },
            KycStatus.RESUBMISSION_REQUESTED,
        ),
        (
            "applicantReviewed",
            {"reviewAnswer": "RED", "reviewRejectType": "FINAL", "rejectLabels": ["FORGERY"]},
            KycStatus.REJECTED_FINAL,
        ),
        ("applicantReviewed", {"reviewAnswer": "RED"}, KycStatus.MANUAL_REVIEW),
        ("applicantReviewed", {"reviewAnswer": "YELLOW"}, KycStatus.MANUAL_REVIEW),
        ("applicantPending", None, KycStatus.SUBMITTED),
        ("applicantCreated", None, KycStatus.APPLICANT_CREATED),
        ("applicantOnHold", None, KycStatus.MANUAL_REVIEW),
        ("applicantReset", None, KycStatus.EXPIRED),
        ("applicantDeactivated", None, KycStatus.EXPIRED),
    ],
)
def test_parse_maps_status(
    client: SumsubClient, event_type: str, result: dict[str, object] | None, status: KycStatus
) -> None:
    fields: dict[str, object] = {"type": event_type}
    if result is not None:
        fields["reviewResult"] = result
    event = client.parse_webhook(_payload(**fields))
    assert event.result is not None
    assert event.result.status == status
    assert event.provider == "sumsub"
    assert event.provider_ref == "5cb56e8e0a975a35f333cb83"
    assert event.external_user_id == "trader-1"
    assert event.type == event_type


def test_parse_keeps_reasons_comments_and_utc_time(client: SumsubClient) -> None:
    result = {
        "reviewAnswer": "RED",
        "reviewRejectType": "RETRY",
        "rejectLabels": ["UNSATISFACTORY_PHOTOS", "SCREENSHOTS"],
        "moderationComment": "Please upload an original photo.",
        "clientComment": "Screenshots are not accepted.",
    }
    event = client.parse_webhook(_payload(type="applicantReviewed", reviewResult=result))
    assert event.created_at == datetime(2020, 2, 21, 13, 23, 19, 321000, tzinfo=UTC)
    assert event.result is not None
    assert event.result.reasons == ["UNSATISFACTORY_PHOTOS", "SCREENSHOTS"]
    assert event.result.moderation_comment == "Please upload an original photo."
    assert event.result.client_comment == "Screenshots are not accepted."
    assert event.result.reviewed_at == event.created_at


def test_parse_falls_back_to_created_at_with_offset(client: SumsubClient) -> None:
    raw = _payload(type="applicantPending", createdAtMs=None, createdAt="2023-03-14 12:50:27+0000")
    assert client.parse_webhook(raw).created_at == datetime(2023, 3, 14, 12, 50, 27, tzinfo=UTC)


def test_informational_events_carry_no_status(client: SumsubClient) -> None:
    assert client.parse_webhook(_payload(type="applicantTagsChanged")).result is None


def test_event_key_is_stable_for_redeliveries_and_differs_otherwise(client: SumsubClient) -> None:
    raw = _payload(type="applicantPending")
    reordered = json.dumps(dict(reversed(list(json.loads(raw).items()))), indent=2).encode()
    first = client.parse_webhook(raw).event_key
    assert client.parse_webhook(raw).event_key == first
    assert client.parse_webhook(reordered).event_key == first
    later = _payload(type="applicantPending", createdAtMs="2020-02-21 13:23:19.322")
    assert client.parse_webhook(later).event_key != first
    assert len(first) <= 200  # fits provider_webhooks.event_key


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe\x00",
        _payload(type="applicantPending", createdAtMs=None),
        _payload(type="applicantPending", applicantId=None),
        _payload(type=None),
        _payload(type="applicantPending", createdAtMs="yesterday"),
    ],
)
def test_malformed_webhooks_raise_value_error(client: SumsubClient, raw: bytes) -> None:
    with pytest.raises(ValueError):
        client.parse_webhook(raw)
