"""The Sumsub-style KYC simulator end to end: SumsubClient → simulator → signed webhooks → a
receiver, all over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from fxcrm.adapters.kyc.base import KycStatus, KycWebhookEvent
from fxcrm.adapters.kyc.sumsub import SumsubClient
from fxcrm.adapters.simulators.kyc import (
    KycSimConfig,
    KycSimulator,
    create_kyc_simulator,
    scenario_for,
    serving,
)

TOKEN = "sbx:test-token"
SECRET_KEY = "test-secret-key"
WEBHOOK_SECRET = "test-webhook-secret"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
HOOK_PATH = "/webhooks/kyc/sumsub"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def external_user_id(self) -> str:
        return str(json.loads(self.body)["externalUserId"])


@dataclass
class Receiver:
    """Stands in for fxcrm's webhook route: records what arrives, fails on request."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)  # externalUserId -> 500s to answer

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(HOOK_PATH)
        async def hook(request: Request) -> Response:
            delivery = Delivery(dict(request.headers), await request.body())
            user = delivery.external_user_id
            if self.fail_first.get(user, 0) > 0:
                self.fail_first[user] -= 1
                return Response(status_code=500)
            self.deliveries.append(delivery)
            return Response(status_code=200)

        return app

    def of(self, external_user_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.external_user_id == external_user_id]


@dataclass
class Sim:
    url: str
    state: KycSimulator


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture(scope="module")
async def sim(receiver: Receiver) -> AsyncIterator[Sim]:
    config = KycSimConfig(
        app_token=TOKEN,
        secret_key=SECRET_KEY,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=receiver.url + HOOK_PATH,
        review_delay_seconds=0,
        webhook_backoff_seconds=0.01,
        webhook_attempts=4,
    )
    app = create_kyc_simulator(config)
    async with serving(app) as url:
        yield Sim(url, app.state.simulator)


@pytest.fixture
async def client(sim: Sim) -> AsyncIterator[SumsubClient]:
    kyc = SumsubClient(sim.url, TOKEN, SECRET_KEY, WEBHOOK_SECRET, timeout=2)
    yield kyc
    await kyc.close()


@pytest.fixture
async def control(sim: Sim) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        yield http


async def _eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def _applicant(client: SumsubClient, external: str, email: str = "a@example.com") -> str:
    return await client.create_applicant(
        external_user_id=external,
        level="basic-kyc-level",
        first_name="Ada",
        last_name="Lovelace",
        dob=date(1990, 12, 10),
        country="FR",
        email=email,
    )


async def _submit(client: SumsubClient, applicant_id: str) -> None:
    await client.upload_document(applicant_id, "ID_CARD", "FR", "id.jpg", JPEG, "image/jpeg")
    await client.submit(applicant_id)


def _events(client: SumsubClient, deliveries: list[Delivery]) -> list[KycWebhookEvent]:
    for d in deliveries:
        assert client.verify_webhook(d.headers, d.body)
    return [client.parse_webhook(d.body) for d in deliveries]


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


SCENARIOS = [
    # scenario, webhook types after applicantCreated, final status, reasons
    ("sim-green", ["applicantPending", "applicantReviewed"], KycStatus.APPROVED, []),
    (
        "sim-red-retry",
        ["applicantPending", "applicantReviewed"],
        KycStatus.RESUBMISSION_REQUESTED,
        ["UNSATISFACTORY_PHOTOS"],
    ),
    (
        "sim-red-final",
        ["applicantPending", "applicantReviewed"],
        KycStatus.REJECTED_FINAL,
        ["FORGERY"],
    ),
    ("sim-onhold", ["applicantPending", "applicantOnHold"], KycStatus.MANUAL_REVIEW, []),
    ("sim-expire", ["applicantPending", "applicantDeactivated"], KycStatus.EXPIRED, []),
    (
        "sim-dup-face",
        ["applicantPending", "applicantReviewed"],
        KycStatus.REJECTED_FINAL,
        ["DUPLICATE"],
    ),
    (
        "sim-green-then-red",
        ["applicantPending", "applicantReviewed", "applicantReviewed"],
        KycStatus.REJECTED_FINAL,
        ["FORGERY"],
    ),
]


@pytest.mark.parametrize(("scenario", "types", "final", "reasons"), SCENARIOS)
async def test_scenario_final_webhook_and_status(
    client: SumsubClient,
    receiver: Receiver,
    scenario: str,
    types: list[str],
    final: KycStatus,
    reasons: list[str],
) -> None:
    external = _uid(scenario)
    applicant_id = await _applicant(client, external)
    await _submit(client, applicant_id)
    await _eventually(lambda: len(receiver.of(external)) == len(types) + 1)

    events = sorted(_events(client, receiver.of(external)), key=lambda e: e.created_at)
    assert [e.type for e in events] == ["applicantCreated", *types]
    assert all(e.provider_ref == applicant_id for e in events)
    assert len({e.event_key for e in events}) == len(events)
    last = events[-1]
    assert last.result is not None
    assert last.result.status == final
    assert last.result.reasons == reasons

    current = await client.fetch_status(applicant_id)  # the authority agrees with the last hint
    assert current.status == final
    assert current.reasons == reasons
    if scenario == "sim-green-then-red":
        assert events[-2].result is not None
        assert events[-2].result.status == KycStatus.APPROVED


async def test_email_marker_selects_the_scenario(client: SumsubClient, receiver: Receiver) -> None:
    external = _uid("trader")  # fxcrm's own trader id: no marker
    applicant_id = await _applicant(client, external, email="ada+sim-red-final@example.com")
    await _submit(client, applicant_id)
    await _eventually(lambda: len(receiver.of(external)) == 3)
    assert (await client.fetch_status(applicant_id)).status == KycStatus.REJECTED_FINAL


def test_scenario_rules() -> None:
    assert scenario_for("sim-green-then-red-1", None) == "sim-green-then-red"
    assert scenario_for("sim-green-1", "x+sim-red-final@example.com") == "sim-green"
    assert scenario_for("trader-1", "sim-onhold.bob@example.com") == "sim-onhold"
    assert scenario_for("trader-1", "bob@sim-onhold.example") == "sim-green"  # local part only
    assert scenario_for("trader-1", None) == "sim-green"


async def test_red_retry_resubmission_is_approved(client: SumsubClient, receiver: Receiver) -> None:
    external = _uid("sim-red-retry")
    applicant_id = await _applicant(client, external)
    await _submit(client, applicant_id)
    await _eventually(lambda: len(receiver.of(external)) == 3)
    first = await client.fetch_status(applicant_id)
    assert first.status == KycStatus.RESUBMISSION_REQUESTED
    assert first.moderation_comment  # something to show the trader

    await _submit(client, applicant_id)
    await _eventually(lambda: len(receiver.of(external)) == 5)
    assert (await client.fetch_status(applicant_id)).status == KycStatus.APPROVED


async def test_duplicate_fault_delivers_every_webhook_twice(
    client: SumsubClient, receiver: Receiver, control: httpx.AsyncClient
) -> None:
    external = _uid("sim-green")
    applicant_id = await _applicant(client, external)
    await control.post("/_sim/faults", json={"applicant_id": applicant_id, "duplicate": True})
    await _submit(client, applicant_id)
    # created (before the fault) once; pending and reviewed twice each
    await _eventually(lambda: len(receiver.of(external)) == 5)
    events = _events(client, receiver.of(external))
    assert len({e.event_key for e in events}) == 3  # the receiver's de-duplication key
    bodies = [d.body for d in receiver.of(external)[1:]]
    assert bodies[0] == bodies[1] and bodies[2] == bodies[3]


async def test_out_of_order_fault_sends_newest_first(
    client: SumsubClient, receiver: Receiver, control: httpx.AsyncClient
) -> None:
    external = _uid("sim-green-then-red")
    applicant_id = await _applicant(client, external)
    await control.post("/_sim/faults", json={"applicant_id": applicant_id, "out_of_order": True})
    await _submit(client, applicant_id)
    await _eventually(lambda: len(receiver.of(external)) == 4)
    arrived = _events(client, receiver.of(external))[1:]  # after applicantCreated
    assert [e.type for e in arrived] == [
        "applicantReviewed",
        "applicantReviewed",
        "applicantPending",
    ]
    # Arrival order is the reverse of the provider's timestamps: the receiver must sort.
    assert arrived[0].created_at > arrived[1].created_at > arrived[2].created_at
    newest = max(arrived, key=lambda e: e.created_at)
    assert newest.result is not None and newest.result.status == KycStatus.REJECTED_FINAL


@pytest.mark.parametrize("fault", ["bad_signature", "wrong_alg"])
async def test_signature_faults_fail_verification(
    client: SumsubClient, receiver: Receiver, control: httpx.AsyncClient, fault: str
) -> None:
    external = _uid("sim-green")
    await control.post("/_sim/faults", json={fault: True})  # every applicant
    try:
        applicant_id = await _applicant(client, external)
        await _submit(client, applicant_id)
        await _eventually(lambda: len(receiver.of(external)) == 3)
    finally:
        await control.post("/_sim/faults", json={fault: False})
    for delivery in receiver.of(external):
        assert not client.verify_webhook(delivery.headers, delivery.body)
        client.parse_webhook(delivery.body)  # well-formed; only the signature is wrong


async def test_webhook_delivery_retries_until_2xx(
    client: SumsubClient, receiver: Receiver, sim: Sim
) -> None:
    external = _uid("sim-green")
    receiver.fail_first[external] = 2  # the applicantCreated webhook gets two 500s
    applicant_id = await _applicant(client, external)
    held = sim.state.applicants[applicant_id]

    def delivered() -> bool:
        attempts = held.webhooks[0]["deliveries"] if held.webhooks else []
        return bool(attempts) and attempts[-1].get("status") == 200

    await _eventually(delivered)
    assert [a["status"] for a in held.webhooks[0]["deliveries"]] == [500, 500, 200]
    assert len(receiver.of(external)) == 1


async def test_inspect_and_force_review(
    client: SumsubClient, receiver: Receiver, control: httpx.AsyncClient
) -> None:
    external = _uid("trader")
    applicant_id = await _applicant(client, external)
    await client.upload_document(applicant_id, "PASSPORT", "FR", "p.jpg", JPEG, "image/jpeg")

    held = (await control.get(f"/_sim/applicants/{applicant_id}")).json()
    assert held["scenario"] == "sim-green"
    assert held["documents"][0]["idDocType"] == "PASSPORT"
    assert held["documents"][0]["size"] == len(JPEG)
    assert held["review"]["reviewStatus"] == "init"

    refused = await control.post(
        f"/_sim/applicants/{applicant_id}/review", json={"reviewAnswer": "RED"}
    )
    assert refused.status_code == 422  # RED needs RETRY or FINAL

    forced = await control.post(
        f"/_sim/applicants/{applicant_id}/review",
        json={
            "reviewAnswer": "RED",
            "reviewRejectType": "RETRY",
            "rejectLabels": ["SELFIE_MISMATCH"],
        },
    )
    assert forced.status_code == 200
    await _eventually(lambda: len(receiver.of(external)) == 2)
    event = _events(client, receiver.of(external))[-1]
    assert event.type == "applicantReviewed"
    assert event.result is not None and event.result.reasons == ["SELFIE_MISMATCH"]
    assert (await client.fetch_status(applicant_id)).status == KycStatus.RESUBMISSION_REQUESTED

    listed = (await control.get("/_sim/applicants")).json()
    assert any(a["id"] == applicant_id for a in listed)
    assert (await control.get("/_sim/applicants/nope")).status_code == 404
