"""A Sumsub-style KYC provider for development and tests (COMPLIANCE.md §4.7).

It speaks the part of Sumsub's API that SumsubClient uses, refuses requests whose signature or app
token is wrong (401), keeps applicants and documents in memory, and after a submit sends signed
webhooks to `config.webhook_url`: applicantPending at once, then the review after
`config.review_delay_seconds`.

Scenario — what the review decides — is the first marker found, longest marker first:
  1. an externalUserId that starts with it, e.g. "sim-red-retry-42";
  2. otherwise an email whose local part contains it, e.g. "alice+sim-onhold@example.com"
     (fxcrm sends its trader id as externalUserId, so demos and end-to-end tests use the email);
  3. otherwise sim-green.

  sim-green           applicantReviewed GREEN
  sim-red-retry       RED + RETRY (UNSATISFACTORY_PHOTOS) on the first attempt, GREEN on later ones
  sim-red-final       RED + FINAL (FORGERY)
  sim-onhold          applicantOnHold (reviewStatus onHold)
  sim-expire          applicantDeactivated; GET .../one then shows "deleted": true
  sim-dup-face        RED + FINAL (DUPLICATE)
  sim-green-then-red  GREEN, then one more delay later RED + FINAL (FORGERY): a revoked approval

Faults, from `config.faults` or `POST /_sim/faults` (JSON; with "applicant_id" for one applicant,
else for all; fields left out stay as they are):
  duplicate      every webhook is delivered twice, byte for byte
  out_of_order   the events of a review are held and delivered newest first
  bad_signature  webhooks are signed with a wrong secret
  wrong_alg      X-Payload-Digest-Alg names another algorithm than the one that signed
  timeout        the next API call does its work, then answers only after
                 `config.timeout_fault_seconds` (one-shot), so the client times out and retries

Webhook delivery retries a non-2xx answer `config.webhook_attempts` times with doubling backoff.
Test helpers (no auth: the simulator must only listen on loopback): GET /_sim/applicants,
GET /_sim/applicants/{id}, POST /_sim/applicants/{id}/review, GET|POST /_sim/faults,
POST /_sim/reset.

Run it: `python -m fxcrm.adapters.simulators.kyc --port 7111`, `await run_kyc_simulator(...)`,
or `async with serving(create_kyc_simulator(config)) as base_url:` in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from starlette.datastructures import UploadFile

from fxcrm.adapters.kyc.sumsub import (
    DEFAULT_DIGEST_ALG,
    DIGEST_ALGORITHMS,
    payload_digest,
    request_signature,
)
from fxcrm.core.config import DEV_KYC_APP_TOKEN, DEV_KYC_SECRET_KEY, DEV_KYC_WEBHOOK_SECRET

DEFAULT_PORT = 7111
SCENARIOS = (
    "sim-green",
    "sim-red-retry",
    "sim-red-final",
    "sim-onhold",
    "sim-expire",
    "sim-dup-face",
    "sim-green-then-red",
)
_LONGEST_FIRST = sorted(SCENARIOS, key=len, reverse=True)  # sim-green-then-red before sim-green
DOC_TYPES = {"PASSPORT", "ID_CARD", "DRIVERS", "RESIDENCE_PERMIT", "UTILITY_BILL", "BANK_STATEMENT"}
_IN_REVIEW = {"pending", "queued", "prechecked"}


class SimFaults(BaseModel):
    duplicate: bool = False
    out_of_order: bool = False
    bad_signature: bool = False
    wrong_alg: bool = False
    timeout: bool = False  # one-shot: cleared by the call it delays


class FaultsUpdate(BaseModel):
    applicant_id: str | None = None
    duplicate: bool | None = None
    out_of_order: bool | None = None
    bad_signature: bool | None = None
    wrong_alg: bool | None = None
    timeout: bool | None = None


class KycSimConfig(BaseModel):
    app_token: str = DEV_KYC_APP_TOKEN
    secret_key: str = DEV_KYC_SECRET_KEY
    webhook_secret: str = DEV_KYC_WEBHOOK_SECRET
    webhook_url: str | None = "http://127.0.0.1:8000/webhooks/kyc/sumsub"
    webhook_digest_alg: str = DEFAULT_DIGEST_ALG
    review_delay_seconds: float = 1.0
    webhook_attempts: int = 4
    webhook_backoff_seconds: float = 0.5  # doubles after each failed attempt
    webhook_timeout_seconds: float = 5.0  # Sumsub's own delivery timeout
    timeout_fault_seconds: float = 6.0  # longer than the client's timeout
    max_clock_skew_seconds: float = 300.0  # X-App-Access-Ts further off than this is refused
    require_documents: bool = True  # Sumsub refuses a submit before the documents are in
    client_id: str = "fxcrm-sim"
    faults: SimFaults = Field(default_factory=SimFaults)


class ForcedReview(BaseModel):
    """POST /_sim/applicants/{id}/review: a reviewer's answer, in Sumsub's own words."""

    reviewAnswer: Literal["GREEN", "RED"] | None = None
    rejectLabels: list[str] = Field(default_factory=list)
    reviewRejectType: Literal["RETRY", "FINAL"] | None = None
    moderationComment: str | None = None
    clientComment: str | None = None
    onHold: bool = False

    @model_validator(mode="after")
    def _complete(self) -> ForcedReview:
        if not self.onHold and self.reviewAnswer is None:
            raise ValueError("give reviewAnswer, or onHold: true")
        if self.reviewAnswer == "RED" and self.reviewRejectType is None:
            raise ValueError("a RED answer needs reviewRejectType RETRY or FINAL")
        return self


@dataclass(frozen=True)
class Outcome:
    """One step of a review: the applicant's new state and the webhook that announces it."""

    event: str
    review_status: str = "completed"
    result: dict[str, Any] | None = None
    deactivate: bool = False


def _red(labels: list[str], reject_type: str, user_text: str, staff_text: str) -> dict[str, Any]:
    return {
        "reviewAnswer": "RED",
        "rejectLabels": labels,
        "reviewRejectType": reject_type,
        "moderationComment": user_text,
        "clientComment": staff_text,
    }


_GREEN = Outcome("applicantReviewed", result={"reviewAnswer": "GREEN", "rejectLabels": []})
_FORGERY = Outcome(
    "applicantReviewed",
    result=_red(
        ["FORGERY"],
        "FINAL",
        "We could not verify your identity.",
        "Document shows signs of tampering (simulator).",
    ),
)
_PLANS: dict[str, list[Outcome]] = {
    "sim-green": [_GREEN],
    "sim-red-retry": [
        Outcome(
            "applicantReviewed",
            result=_red(
                ["UNSATISFACTORY_PHOTOS"],
                "RETRY",
                "The photo of your document is not readable. Please upload a clear photo.",
                "Blurred document photo (simulator).",
            ),
        )
    ],
    "sim-red-final": [_FORGERY],
    "sim-onhold": [Outcome("applicantOnHold", review_status="onHold")],
    "sim-expire": [Outcome("applicantDeactivated", review_status="init", deactivate=True)],
    "sim-dup-face": [
        Outcome(
            "applicantReviewed",
            result=_red(
                ["DUPLICATE"],
                "FINAL",
                "We could not verify your identity.",
                "This face already belongs to another applicant (simulator).",
            ),
        )
    ],
    "sim-green-then-red": [_GREEN, _FORGERY],
}


def scenario_for(external_user_id: str, email: str | None) -> str:
    for marker in _LONGEST_FIRST:
        if external_user_id.startswith(marker):
            return marker
    local_part = (email or "").partition("@")[0].lower()
    for marker in _LONGEST_FIRST:
        if marker in local_part:
            return marker
    return "sim-green"


def plan_for(scenario: str, attempt: int) -> list[Outcome]:
    if scenario == "sim-red-retry" and attempt > 1:
        return [_GREEN]  # the resubmission passes
    return _PLANS[scenario]


def _sumsub_time(moment: datetime, *, millis: bool = False) -> str:
    if millis:
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%Y-%m-%d %H:%M:%S+0000")


def _hex_id() -> str:
    return secrets.token_hex(12)  # Sumsub ids: 24 lowercase hex characters


@dataclass
class SimApplicant:
    id: str
    external_user_id: str
    level_name: str
    email: str | None
    fixed_info: dict[str, Any]
    scenario: str
    created_at: datetime
    inspection_id: str = field(default_factory=_hex_id)
    review_id: str = field(default_factory=_hex_id)
    attempt_id: str = field(default_factory=_hex_id)
    attempt_cnt: int = 0
    generation: int = 0  # bumped by every submit or forced review: a running plan then stops
    review_status: str = "init"
    review_result: dict[str, Any] | None = None
    review_created: datetime | None = None
    review_date: datetime | None = None
    deleted: bool = False
    documents: list[dict[str, Any]] = field(default_factory=list)
    faults: SimFaults = field(default_factory=SimFaults)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    last_event_at: datetime | None = None
    last_delivery: asyncio.Task[None] | None = None  # webhooks leave one after another

    def review(self) -> dict[str, Any]:
        review: dict[str, Any] = {
            "reviewId": self.review_id,
            "attemptId": self.attempt_id,
            "attemptCnt": self.attempt_cnt,
            "levelName": self.level_name,
            "createDate": _sumsub_time(self.review_created or self.created_at),
            "reviewStatus": self.review_status,
            "priority": 0,
        }
        if self.review_date is not None:
            review["reviewDate"] = _sumsub_time(self.review_date)
        if self.review_result is not None:
            review["reviewResult"] = self.review_result
        return review

    def to_api(self, client_id: str) -> dict[str, Any]:
        """The applicant as GET /resources/applicants/{id}/one shows it."""
        data: dict[str, Any] = {
            "id": self.id,
            "createdAt": self.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "clientId": client_id,
            "inspectionId": self.inspection_id,
            "externalUserId": self.external_user_id,
            "fixedInfo": self.fixed_info,
            "applicantPlatform": "API",
            "review": self.review(),
            "type": "individual",
            "deleted": self.deleted,
        }
        if self.email:
            data["email"] = self.email
        return data

    def apply(self, outcome: Outcome, now: datetime) -> None:
        self.review_status = outcome.review_status
        self.review_result = outcome.result
        self.review_date = now if outcome.review_status == "completed" else None
        if outcome.deactivate:
            self.deleted = True


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class KycSimulator:
    """State and behaviour; `create_kyc_simulator` wraps it in a FastAPI app."""

    def __init__(self, config: KycSimConfig) -> None:
        self.config = config
        self.faults = config.faults.model_copy()
        self.applicants: dict[str, SimApplicant] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    # -- API behaviour ------------------------------------------------------------------------

    def create(self, level_name: str, body: dict[str, Any]) -> SimApplicant:
        external = body.get("externalUserId")
        if not isinstance(external, str) or not external:
            raise _ApiError(400, "externalUserId is required")
        for existing in self.applicants.values():
            if existing.external_user_id == external and not existing.deleted:
                raise _ApiError(
                    409,
                    f"Applicant with external user id '{external}' already exists: {existing.id}",
                )
        email, fixed_info = body.get("email"), body.get("fixedInfo")
        email = email if isinstance(email, str) else None
        fixed_info = fixed_info if isinstance(fixed_info, dict) else {}
        applicant = SimApplicant(
            id=_hex_id(),
            external_user_id=external,
            level_name=level_name,
            email=email,
            fixed_info=fixed_info,
            scenario=scenario_for(external, email),
            created_at=datetime.now(UTC),
        )
        self.applicants[applicant.id] = applicant
        self._send(applicant, self._event(applicant, "applicantCreated"))
        return applicant

    def find(self, ref: str) -> SimApplicant:
        prefix = "-;externalUserId="
        if ref.startswith(prefix):
            wanted = ref[len(prefix) :]
            for applicant in self.applicants.values():
                if applicant.external_user_id == wanted and not applicant.deleted:
                    return applicant
        elif ref in self.applicants:
            return self.applicants[ref]
        raise _ApiError(404, "Applicant not found")

    def add_document(
        self, applicant: SimApplicant, metadata: dict[str, Any], upload: UploadFile, content: bytes
    ) -> str:
        self._refuse_if_deactivated(applicant)
        doc_type, country = metadata.get("idDocType"), metadata.get("country")
        if doc_type not in DOC_TYPES:
            raise _ApiError(400, f"Unsupported idDocType {doc_type!r}")
        if not (isinstance(country, str) and len(country) == 3 and country.isalpha()):
            raise _ApiError(400, "country must be an ISO 3166-1 alpha-3 code")
        if not content:
            raise _ApiError(400, "content is empty")
        image_id = str(secrets.randbelow(9 * 10**9) + 10**9)  # Sumsub image ids are numbers
        applicant.documents.append(
            {
                "imageId": image_id,
                "idDocType": doc_type,
                "country": country,
                "fileName": upload.filename,
                "contentType": upload.content_type,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "attempt": applicant.attempt_cnt + 1,
            }
        )
        return image_id

    def submit(self, applicant: SimApplicant) -> None:
        self._refuse_if_deactivated(applicant)
        if applicant.review_status in _IN_REVIEW:
            raise _ApiError(409, "Applicant is already being reviewed")
        if self.config.require_documents and not applicant.documents:
            raise _ApiError(409, "Not all required documents or data are submitted")
        now = datetime.now(UTC)
        applicant.attempt_cnt += 1
        applicant.attempt_id = _hex_id()
        applicant.review_status = "pending"
        applicant.review_result = None
        applicant.review_created = now
        applicant.review_date = None
        applicant.generation += 1
        self._spawn(self._run_review(applicant, applicant.generation))

    def force_review(self, applicant: SimApplicant, forced: ForcedReview) -> None:
        if forced.onHold:
            outcome = Outcome("applicantOnHold", review_status="onHold")
        else:
            result = forced.model_dump(exclude={"onHold"}, exclude_none=True)
            outcome = Outcome("applicantReviewed", result=result)
        applicant.generation += 1
        applicant.apply(outcome, datetime.now(UTC))
        self._send(applicant, self._event(applicant, outcome.event))

    def update_faults(self, update: FaultsUpdate) -> SimFaults:
        target = self.find(update.applicant_id).faults if update.applicant_id else self.faults
        for name in SimFaults.model_fields:
            value = getattr(update, name)
            if value is not None:
                setattr(target, name, value)
        return target

    def effective_faults(self, applicant: SimApplicant) -> SimFaults:
        mine, every = applicant.faults, self.faults
        return SimFaults(
            duplicate=mine.duplicate or every.duplicate,
            out_of_order=mine.out_of_order or every.out_of_order,
            bad_signature=mine.bad_signature or every.bad_signature,
            wrong_alg=mine.wrong_alg or every.wrong_alg,
        )

    async def stall_if_faulted(self, applicant: SimApplicant | None) -> None:
        """The timeout fault: the work is done, the answer comes too late (and only once)."""
        if applicant is not None and applicant.faults.timeout:
            applicant.faults.timeout = False
        elif self.faults.timeout:
            self.faults.timeout = False
        else:
            return
        await asyncio.sleep(self.config.timeout_fault_seconds)

    def check_signature(self, request: Request, body: bytes) -> None:
        token = request.headers.get("X-App-Token", "")
        ts = request.headers.get("X-App-Access-Ts", "")
        signature = request.headers.get("X-App-Access-Sig", "")
        if not hmac.compare_digest(token.encode(), self.config.app_token.encode()):
            raise _ApiError(401, "Invalid app token")
        if not ts.isdigit() or abs(time.time() - int(ts)) > self.config.max_clock_skew_seconds:
            raise _ApiError(401, "Request timestamp is missing or too far from now")
        path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        query: bytes = request.scope.get("query_string", b"")
        path_with_query = path + b"?" + query if query else path
        expected = request_signature(
            self.config.secret_key, ts, request.method, path_with_query, body
        )
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise _ApiError(401, "Request signature mismatch")

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.applicants.clear()
        self.faults = self.config.faults.model_copy()

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- reviews and webhooks -------------------------------------------------------------------

    async def _run_review(self, applicant: SimApplicant, generation: int) -> None:
        # The review runs on its own clock; a slow or failing receiver delays only the webhooks.
        held: list[dict[str, Any]] = []
        out_of_order = self.effective_faults(applicant).out_of_order

        def emit(event: dict[str, Any]) -> None:
            if out_of_order:
                held.append(event)
            else:
                self._send(applicant, event)

        emit(self._event(applicant, "applicantPending"))
        for outcome in plan_for(applicant.scenario, applicant.attempt_cnt):
            await asyncio.sleep(self.config.review_delay_seconds)
            if applicant.generation != generation or applicant.deleted:
                return  # a newer submit or a forced review took over
            applicant.apply(outcome, datetime.now(UTC))
            emit(self._event(applicant, outcome.event))
        for event in reversed(held):  # newest first: the receiver must order by createdAtMs
            self._send(applicant, event)

    def _send(self, applicant: SimApplicant, event: dict[str, Any]) -> None:
        """Queue a webhook behind the applicant's earlier ones, so they leave in order."""
        previous = applicant.last_delivery

        async def after_previous() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._deliver(applicant, event)

        applicant.last_delivery = self._spawn(after_previous())

    def _event(self, applicant: SimApplicant, event_type: str) -> dict[str, Any]:
        # Strictly increasing timestamps per applicant, so "newer" is always well defined.
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # createdAtMs has ms
        if applicant.last_event_at is not None and now <= applicant.last_event_at:
            now = applicant.last_event_at + timedelta(milliseconds=1)
        applicant.last_event_at = now
        payload: dict[str, Any] = {
            "applicantId": applicant.id,
            "inspectionId": applicant.inspection_id,
            "correlationId": uuid.uuid4().hex,
            "levelName": applicant.level_name,
            "externalUserId": applicant.external_user_id,
            "type": event_type,
            "sandboxMode": self.config.app_token.startswith("sbx:"),
            "reviewStatus": applicant.review_status,
            "createdAt": _sumsub_time(now),
            "createdAtMs": _sumsub_time(now, millis=True),
            "clientId": self.config.client_id,
            "applicantType": "individual",
        }
        if event_type == "applicantReviewed" and applicant.review_result is not None:
            payload["reviewResult"] = applicant.review_result
        return payload

    async def _deliver(self, applicant: SimApplicant, event: dict[str, Any]) -> None:
        faults = self.effective_faults(applicant)
        body = json.dumps(event, separators=(",", ":")).encode()
        secret = self.config.webhook_secret
        if faults.bad_signature:
            secret = "wrong-" + secret
        alg = self.config.webhook_digest_alg
        named = alg
        if faults.wrong_alg:
            named = next(other for other in DIGEST_ALGORITHMS if other != alg)
        headers = {
            "Content-Type": "application/json",
            "X-Payload-Digest": payload_digest(secret, body, alg),
            "X-Payload-Digest-Alg": named,
        }
        record: dict[str, Any] = {
            "type": event["type"],
            "createdAtMs": event["createdAtMs"],
            "bad_signature": faults.bad_signature or faults.wrong_alg,
            "deliveries": [],
        }
        applicant.webhooks.append(record)
        if not self.config.webhook_url:
            return
        for _ in range(2 if faults.duplicate else 1):
            await self._post(body, headers, record["deliveries"])

    async def _post(self, body: bytes, headers: dict[str, str], log: list[dict[str, Any]]) -> None:
        assert self.config.webhook_url is not None
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.webhook_timeout_seconds)
        backoff = self.config.webhook_backoff_seconds
        for attempt in range(1, max(1, self.config.webhook_attempts) + 1):
            try:
                response = await self._http.post(
                    self.config.webhook_url, content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                log.append({"attempt": attempt, "error": type(exc).__name__})
            else:
                log.append({"attempt": attempt, "status": response.status_code})
                if response.is_success:
                    return
            if attempt < self.config.webhook_attempts:
                await asyncio.sleep(backoff)
                backoff *= 2

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _refuse_if_deactivated(applicant: SimApplicant) -> None:
        if applicant.deleted:
            raise _ApiError(409, "Applicant is deactivated")


def create_kyc_simulator(config: KycSimConfig | None = None) -> FastAPI:
    sim = KycSimulator(config or KycSimConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sim.aclose()

    app = FastAPI(title="fxcrm KYC simulator (Sumsub)", lifespan=lifespan)
    app.state.simulator = sim

    @app.exception_handler(_ApiError)
    async def _api_error(_: Request, exc: _ApiError) -> JSONResponse:
        body = {
            "description": exc.description,
            "code": exc.status,
            "correlationId": uuid.uuid4().hex,
        }
        return JSONResponse(body, status_code=exc.status)

    async def signed(request: Request) -> bytes:
        body = await request.body()  # cached by Starlette: the handler can still read the form
        sim.check_signature(request, body)
        return body

    api = APIRouter(prefix="/resources/applicants")

    @api.post("", status_code=201)
    async def create_applicant(
        level_name: Annotated[str, Query(alias="levelName")], body: bytes = Depends(signed)
    ) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise _ApiError(400, "body is not JSON") from exc
        if not isinstance(data, dict):
            raise _ApiError(400, "body is not a JSON object")
        applicant = sim.create(level_name, data)
        await sim.stall_if_faulted(None)
        return applicant.to_api(sim.config.client_id)

    @api.get("/{applicant_id}/one")
    async def get_applicant(applicant_id: str, _: bytes = Depends(signed)) -> dict[str, Any]:
        applicant = sim.find(applicant_id)
        await sim.stall_if_faulted(applicant)
        return applicant.to_api(sim.config.client_id)

    @api.get("/{applicant_id}/status")
    async def get_review_status(applicant_id: str, _: bytes = Depends(signed)) -> dict[str, Any]:
        applicant = sim.find(applicant_id)
        await sim.stall_if_faulted(applicant)
        return applicant.review()

    @api.post("/{applicant_id}/info/idDoc")
    async def add_id_doc(
        applicant_id: str, request: Request, _: bytes = Depends(signed)
    ) -> JSONResponse:
        applicant = sim.find(applicant_id)
        form = await request.form()
        upload = form.get("content")
        try:
            metadata = json.loads(str(form.get("metadata") or ""))
        except ValueError as exc:
            raise _ApiError(400, "metadata is not JSON") from exc
        if not isinstance(upload, UploadFile) or not isinstance(metadata, dict):
            raise _ApiError(400, "multipart needs a metadata JSON object and a content file")
        image_id = sim.add_document(applicant, metadata, upload, await upload.read())
        await sim.stall_if_faulted(applicant)
        answer = {"idDocType": metadata["idDocType"], "country": metadata["country"]}
        return JSONResponse(answer, headers={"X-Image-Id": image_id})

    @api.post("/{applicant_id}/status/pending")
    async def request_check(applicant_id: str, _: bytes = Depends(signed)) -> dict[str, int]:
        applicant = sim.find(applicant_id)
        sim.submit(applicant)
        await sim.stall_if_faulted(applicant)
        return {"ok": 1}

    control = APIRouter(prefix="/_sim")

    @control.get("/applicants")
    async def list_applicants() -> list[dict[str, Any]]:
        return [
            {
                "id": a.id,
                "externalUserId": a.external_user_id,
                "scenario": a.scenario,
                "reviewStatus": a.review_status,
                "deleted": a.deleted,
            }
            for a in sim.applicants.values()
        ]

    @control.get("/applicants/{applicant_id}")
    async def inspect_applicant(applicant_id: str) -> dict[str, Any]:
        applicant = sim.find(applicant_id)
        return {
            **applicant.to_api(sim.config.client_id),
            "scenario": applicant.scenario,
            "documents": applicant.documents,
            "faults": applicant.faults.model_dump(),
            "webhooks": applicant.webhooks,
        }

    @control.post("/applicants/{applicant_id}/review")
    async def review_applicant(applicant_id: str, forced: ForcedReview) -> dict[str, Any]:
        applicant = sim.find(applicant_id)
        sim.force_review(applicant, forced)
        return applicant.review()

    @control.get("/faults")
    async def get_faults() -> SimFaults:
        return sim.faults

    @control.post("/faults")
    async def set_faults(update: FaultsUpdate) -> SimFaults:
        return sim.update_faults(update)

    @control.post("/reset")
    async def reset() -> dict[str, int]:
        sim.reset()
        return {"ok": 1}

    app.include_router(api)
    app.include_router(control)
    return app


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` in a background task; yields its base URL (port 0: a free port)."""
    # A bounded graceful shutdown: a peer that keeps a connection open must not hang the caller.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError("the server stopped during startup")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        await task


async def run_kyc_simulator(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, config: KycSimConfig | None = None
) -> None:
    """Serve the simulator until cancelled or interrupted."""
    app = create_kyc_simulator(config)
    await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description="Sumsub-style KYC simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--webhook-url", default=KycSimConfig().webhook_url)
    parser.add_argument("--review-delay", type=float, default=1.0)
    args = parser.parse_args()
    config = KycSimConfig(webhook_url=args.webhook_url, review_delay_seconds=args.review_delay)
    asyncio.run(run_kyc_simulator(args.host, args.port, config))


if __name__ == "__main__":
    main()
