"""Sumsub (api.sumsub.com) as a KycProvider: signed API calls, webhook checks, status mapping.

Wire protocol (COMPLIANCE.md §4.2):
- every API request carries X-App-Token, X-App-Access-Ts (unix seconds) and X-App-Access-Sig =
  hex HMAC-SHA256(secret key, ts + METHOD + path_with_query + body bytes);
- every webhook carries X-Payload-Digest = hex HMAC(webhook secret, raw body), with the hash named
  in X-Payload-Digest-Alg (HMAC_SHA256_HEX when absent).

Status mapping follows §4.6: reviewStatus pending/queued/prechecked → SUBMITTED, completed + GREEN →
APPROVED, RED + RETRY → RESUBMISSION_REQUESTED, RED + FINAL → REJECTED_FINAL, onHold →
MANUAL_REVIEW, deactivated or reset → EXPIRED. Anything we cannot map goes to MANUAL_REVIEW, so a
person decides instead of the code guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pycountry

from fxcrm.adapters.kyc.base import KycProviderError, KycResult, KycStatus, KycWebhookEvent

PROVIDER = "sumsub"
DEFAULT_BASE_URL = "https://api.sumsub.com"

DIGEST_ALGORITHMS: dict[str, str] = {
    "HMAC_SHA1_HEX": "sha1",
    "HMAC_SHA256_HEX": "sha256",
    "HMAC_SHA512_HEX": "sha512",
}
DEFAULT_DIGEST_ALG = "HMAC_SHA256_HEX"

# Sumsub wants ISO alpha-3; fxcrm stores alpha-2. Kosovo has no ISO code: Sumsub uses XKX.
_ALPHA3_OVERRIDES = {"XK": "XKX"}

_REVIEW_EVENTS = {"applicantReviewed", "applicantWorkflowCompleted"}
_EVENT_STATUS: dict[str, KycStatus] = {
    "applicantCreated": KycStatus.APPLICANT_CREATED,
    "applicantPending": KycStatus.SUBMITTED,
    "applicantPrechecked": KycStatus.SUBMITTED,
    "applicantAwaitingService": KycStatus.SUBMITTED,
    "applicantOnHold": KycStatus.MANUAL_REVIEW,
    "applicantReset": KycStatus.EXPIRED,
    "applicantDeactivated": KycStatus.EXPIRED,
    "applicantDeleted": KycStatus.EXPIRED,
}
_IN_REVIEW = {"pending", "queued", "prechecked", "awaitingService"}


def request_signature(
    secret_key: str, ts: str, method: str, path_with_query: str | bytes, body: bytes
) -> str:
    """X-App-Access-Sig for one request."""
    path = path_with_query.encode() if isinstance(path_with_query, str) else path_with_query
    message = ts.encode() + method.upper().encode() + path + body
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def payload_digest(secret: str, body: bytes, alg: str = DEFAULT_DIGEST_ALG) -> str:
    """X-Payload-Digest of a webhook body; ValueError for an algorithm Sumsub does not use."""
    hash_name = DIGEST_ALGORITHMS.get(alg)
    if hash_name is None:
        raise ValueError(f"unknown digest algorithm {alg!r}")
    return hmac.new(secret.encode(), body, hash_name).hexdigest()


def verify_payload_digest(headers: Mapping[str, str], raw_body: bytes, secret: str) -> bool:
    """Constant-time check of a webhook's digest over the exact raw bytes."""
    if not secret:
        return False  # never "verify" against an empty secret
    lower = {k.lower(): v for k, v in headers.items()}
    provided = (lower.get("x-payload-digest") or "").strip().lower()
    alg = (lower.get("x-payload-digest-alg") or DEFAULT_DIGEST_ALG).strip().upper()
    if not provided or alg not in DIGEST_ALGORITHMS:
        return False
    expected = payload_digest(secret, raw_body, alg)
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace"))


def parse_sumsub_time(value: object) -> datetime | None:
    """Sumsub writes "2020-02-21 13:23:19.321" (UTC), "2020-06-24 05:05:14+0000" or ISO 8601."""
    if not isinstance(value, str) or not value.strip():
        return None
    parsed = datetime.fromisoformat(value.strip())  # ValueError on garbage: the caller decides
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def status_from_answer(review_result: Mapping[str, Any] | None) -> KycStatus:
    result = review_result or {}
    answer = result.get("reviewAnswer")
    if answer == "GREEN":
        return KycStatus.APPROVED
    if answer == "RED":
        reject_type = result.get("reviewRejectType")
        if reject_type == "RETRY":
            return KycStatus.RESUBMISSION_REQUESTED
        if reject_type == "FINAL":
            return KycStatus.REJECTED_FINAL
    return KycStatus.MANUAL_REVIEW


def status_from_review(
    review_status: str | None,
    review_result: Mapping[str, Any] | None,
    *,
    deactivated: bool = False,
) -> KycStatus:
    """Internal status from an applicant's `review` object (GET .../one or .../status)."""
    if deactivated:
        return KycStatus.EXPIRED
    if review_status == "completed":
        return status_from_answer(review_result)
    if review_status in _IN_REVIEW:
        return KycStatus.SUBMITTED
    if review_status == "init":
        return KycStatus.APPLICANT_CREATED
    if review_status == "awaitingUser":
        return KycStatus.AWAITING_CLIENT
    return KycStatus.MANUAL_REVIEW  # onHold, and statuses Sumsub may add later


def to_alpha3(country: str) -> str:
    code = country.strip().upper()
    if len(code) != 2:
        return code
    if code in _ALPHA3_OVERRIDES:
        return _ALPHA3_OVERRIDES[code]
    found = pycountry.countries.get(alpha_2=code)
    if found is None:
        raise KycProviderError(f"unknown country code {country!r}", retryable=False)
    return str(found.alpha_3)


class SumsubClient:
    """KycProvider for Sumsub. Owns its httpx client unless one is passed in."""

    provider = PROVIDER

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        app_token: str = "",
        secret_key: str = "",
        webhook_secret: str = "",
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._app_token = app_token
        self._secret_key = secret_key
        self._webhook_secret = webhook_secret
        self._timeout = timeout
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def create_applicant(
        self,
        external_user_id: str,
        level: str,
        first_name: str,
        last_name: str,
        dob: date | None = None,
        country: str | None = None,
        email: str | None = None,
    ) -> str:
        fixed_info: dict[str, str] = {"firstName": first_name, "lastName": last_name}
        if dob is not None:
            fixed_info["dob"] = dob.isoformat()
        if country:
            fixed_info["country"] = to_alpha3(country)
        body: dict[str, Any] = {"externalUserId": external_user_id, "fixedInfo": fixed_info}
        if email:
            body["email"] = email
        try:
            response = await self._call(
                "POST", "/resources/applicants", params={"levelName": level}, json_body=body
            )
        except KycProviderError as exc:
            if exc.status_code != 409:
                raise
            # A retry after a lost answer: the applicant exists already, so return that one.
            existing = await self._applicant_by_external_id(external_user_id)
            if existing is None:
                raise
            return existing
        return _required_str(_json(response), "id")

    async def upload_document(
        self,
        provider_ref: str,
        doc_type: str,
        country: str,
        filename: str,
        content: bytes,
        content_type: str,
    ) -> str:
        metadata = {"idDocType": doc_type, "country": to_alpha3(country)}
        response = await self._call(
            "POST",
            f"/resources/applicants/{_segment(provider_ref)}/info/idDoc",
            data={"metadata": json.dumps(metadata)},
            files={"content": (filename, content, content_type)},
        )
        image_id = response.headers.get("X-Image-Id")
        if not image_id:
            raise KycProviderError("sumsub answered an upload without X-Image-Id", retryable=False)
        return image_id

    async def submit(self, provider_ref: str) -> None:
        try:
            await self._call(
                "POST", f"/resources/applicants/{_segment(provider_ref)}/status/pending"
            )
        except KycProviderError as exc:
            if exc.status_code != 409:
                raise
            # Sumsub refuses a second "pending" while one is under review: a retried submit.
            if (await self.fetch_status(provider_ref)).status != KycStatus.SUBMITTED:
                raise

    async def fetch_status(self, provider_ref: str) -> KycResult:
        response = await self._call("GET", f"/resources/applicants/{_segment(provider_ref)}/one")
        applicant = _json(response)
        review = applicant.get("review") or {}
        result = review.get("reviewResult") or {}
        status = status_from_review(
            review.get("reviewStatus"), result, deactivated=bool(applicant.get("deleted"))
        )
        reviewed = review.get("reviewStatus") == "completed"
        return KycResult(
            status=status,
            reasons=[str(label) for label in result.get("rejectLabels") or []],
            moderation_comment=result.get("moderationComment"),
            client_comment=result.get("clientComment"),
            # Only the review and ids: the applicant's personal data stays out of what we keep.
            raw={
                "id": applicant.get("id"),
                "externalUserId": applicant.get("externalUserId"),
                "deleted": bool(applicant.get("deleted")),
                "review": review,
            },
            reviewed_at=parse_sumsub_time(review.get("reviewDate")) if reviewed else None,
        )

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return verify_payload_digest(headers, raw_body, self._webhook_secret)

    def parse_webhook(self, raw_body: bytes) -> KycWebhookEvent:
        payload = json.loads(raw_body)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if not isinstance(payload, dict):
            raise ValueError("webhook body is not a JSON object")
        event_type = _required_str(payload, "type", error=ValueError)
        created_at = parse_sumsub_time(payload.get("createdAtMs")) or parse_sumsub_time(
            payload.get("createdAt")
        )
        if created_at is None:
            raise ValueError("webhook has neither createdAtMs nor createdAt")
        external = payload.get("externalUserId")
        return KycWebhookEvent(
            provider=PROVIDER,
            event_key=_event_key(payload),
            provider_ref=_required_str(payload, "applicantId", error=ValueError),
            external_user_id=external if isinstance(external, str) else None,
            type=event_type,
            created_at=created_at,
            result=_event_result(event_type, payload, created_at),
        )

    async def _applicant_by_external_id(self, external_user_id: str) -> str | None:
        path = f"/resources/applicants/-;externalUserId={_segment(external_user_id)}/one"
        try:
            response = await self._call("GET", path)
        except KycProviderError as exc:
            if exc.status_code == 404:
                return None
            raise
        return _required_str(_json(response), "id")

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            self._base_url + path,
            params=params,
            json=json_body,
            data=data,
            files=files,
            headers={"Accept": "application/json"},
            timeout=self._timeout,
        )
        body = request.read()  # the exact bytes sent, multipart boundary included, are signed
        ts = str(int(time.time()))
        request.headers["X-App-Token"] = self._app_token
        request.headers["X-App-Access-Ts"] = ts
        request.headers["X-App-Access-Sig"] = request_signature(
            self._secret_key, ts, method, request.url.raw_path, body
        )
        try:
            response = await self._http.send(request)
        except httpx.TimeoutException as exc:
            raise KycProviderError(f"sumsub {method} {path}: timed out", retryable=True) from exc
        except httpx.TransportError as exc:
            raise KycProviderError(
                f"sumsub {method} {path}: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        if response.is_success:
            return response
        raise _http_error(method, path, response)


def _http_error(method: str, path: str, response: httpx.Response) -> KycProviderError:
    code = response.status_code
    try:
        detail = response.json()
    except ValueError:
        detail = {}
    description = detail.get("description") if isinstance(detail, dict) else None
    correlation = detail.get("correlationId") if isinstance(detail, dict) else None
    message = f"sumsub {method} {path}: HTTP {code}"
    if description:
        message += f": {description}"
    if correlation:
        message += f" (correlationId {correlation})"
    retryable = code >= 500 or code in (408, 429)
    return KycProviderError(message, retryable=retryable, status_code=code)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise KycProviderError("sumsub answered with invalid JSON", retryable=False) from exc
    if not isinstance(data, dict):
        raise KycProviderError("sumsub answered with a non-object JSON", retryable=False)
    return data


def _required_str(
    data: Mapping[str, Any], key: str, *, error: type[Exception] = KycProviderError
) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise error(f"sumsub payload without {key!r}")
    return value


def _segment(value: str) -> str:
    # Ids go into the path: quote everything, so an id can never reach another resource.
    return quote(value, safe="")


def _event_key(payload: Mapping[str, Any]) -> str:
    # Redeliveries repeat the same content; the hash of the canonical JSON is stable across
    # whitespace and key order, and differs for any event that says something else.
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _event_result(
    event_type: str, payload: Mapping[str, Any], created_at: datetime
) -> KycResult | None:
    if event_type in _REVIEW_EVENTS:
        result = payload.get("reviewResult") or {}
        if not isinstance(result, dict):
            raise ValueError("reviewResult is not an object")
        return KycResult(
            status=status_from_answer(result),
            reasons=[str(label) for label in result.get("rejectLabels") or []],
            moderation_comment=result.get("moderationComment"),
            client_comment=result.get("clientComment"),
            raw=dict(payload),
            reviewed_at=created_at,
        )
    status = _EVENT_STATUS.get(event_type)
    if status is None:
        return None  # informational events: tags, personal info, actions, ...
    return KycResult(status=status, raw=dict(payload))
