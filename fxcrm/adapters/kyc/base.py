"""The one interface fxcrm uses for every KYC provider (Sumsub today; Onfido, Veriff, Jumio later).

Each provider speaks its own statuses; fxcrm sees one state machine (COMPLIANCE.md §4.1, §4.6):

    NOT_STARTED → APPLICANT_CREATED → AWAITING_CLIENT → SUBMITTED
      → APPROVED | RESUBMISSION_REQUESTED | REJECTED_FINAL | MANUAL_REVIEW
    any → EXPIRED;  APPROVED → REJECTED_FINAL (a provider may revoke an approval)

A webhook is a hint: verify it over the raw bytes, store it, de-duplicate on (provider, event_key),
then re-fetch the authoritative status with `fetch_status` before acting on a terminal state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field


class KycProviderError(Exception):
    """A provider refused or failed a request. `retryable` says whether trying again may help
    (timeouts, 5xx, 429) or not (bad request, unknown applicant, bad credentials)."""

    def __init__(
        self, message: str, retryable: bool = False, *, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


class KycStatus(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    APPLICANT_CREATED = "APPLICANT_CREATED"
    AWAITING_CLIENT = "AWAITING_CLIENT"  # the provider waits for documents or liveness
    SUBMITTED = "SUBMITTED"  # pending review at the provider
    APPROVED = "APPROVED"
    RESUBMISSION_REQUESTED = "RESUBMISSION_REQUESTED"  # rejected, the client may try again
    REJECTED_FINAL = "REJECTED_FINAL"
    MANUAL_REVIEW = "MANUAL_REVIEW"  # on hold at the provider, or an answer we cannot map
    EXPIRED = "EXPIRED"  # abandoned, reset or deactivated: the verification is void


class KycResult(BaseModel):
    status: KycStatus
    reasons: list[str] = Field(default_factory=list)  # the provider's reject labels, as sent
    moderation_comment: str | None = None  # may be shown to the client
    client_comment: str | None = None  # internal: staff only, never to the client
    raw: dict[str, Any] = Field(default_factory=dict)
    reviewed_at: datetime | None = None  # UTC


class KycWebhookEvent(BaseModel):
    provider: str
    event_key: str  # the same for redeliveries of the same content: the de-duplication key
    provider_ref: str  # the provider's applicant id
    external_user_id: str | None = None
    type: str  # the provider's event type, e.g. "applicantReviewed"
    created_at: datetime  # the provider's timestamp, UTC: order events by this, not by arrival
    result: KycResult | None = None  # None for events that carry no status (tags changed, ...)


class KycProvider(Protocol):
    provider: str

    async def create_applicant(
        self,
        external_user_id: str,
        level: str,
        first_name: str,
        last_name: str,
        dob: date | None = None,
        country: str | None = None,  # ISO 3166-1 alpha-2 or alpha-3
        email: str | None = None,
    ) -> str:
        """Create (or find, for a retried call) the applicant; returns the provider's id."""
        ...

    async def upload_document(
        self,
        provider_ref: str,
        doc_type: str,  # PASSPORT, ID_CARD, DRIVERS, UTILITY_BILL, BANK_STATEMENT
        country: str,
        filename: str,
        content: bytes,
        content_type: str,
    ) -> str:
        """Upload one document image or PDF; returns the provider's image id."""
        ...

    async def submit(self, provider_ref: str) -> None:
        """Ask for a review (pending). Already pending or reviewed counts as done."""
        ...

    async def fetch_status(self, provider_ref: str) -> KycResult:
        """The authoritative current status, straight from the provider."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True only if the signature over the exact raw bytes is valid."""
        ...

    def parse_webhook(self, raw_body: bytes) -> KycWebhookEvent:
        """Parse a verified webhook; raises ValueError on a malformed payload."""
        ...

    async def close(self) -> None: ...
