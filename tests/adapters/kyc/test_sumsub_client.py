"""SumsubClient: request signing, error mapping, and a round trip against the simulator over
real loopback HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date

import httpx
import pytest

from fxcrm.adapters.kyc.base import KycProviderError, KycStatus
from fxcrm.adapters.kyc.sumsub import SumsubClient, request_signature
from fxcrm.adapters.simulators.kyc import KycSimConfig, KycSimulator, create_kyc_simulator, serving

TOKEN = "sbx:test-token"
SECRET_KEY = "test-secret-key"
WEBHOOK_SECRET = "test-webhook-secret"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Sim:
    url: str
    state: KycSimulator


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Sim]:
    config = KycSimConfig(
        app_token=TOKEN,
        secret_key=SECRET_KEY,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=None,  # this module tests the API; webhooks are covered by test_kyc_simulator
        review_delay_seconds=0,
        timeout_fault_seconds=0.6,
    )
    app = create_kyc_simulator(config)
    async with serving(app) as url:
        yield Sim(url, app.state.simulator)


def _client(sim: Sim, timeout: float) -> SumsubClient:
    return SumsubClient(
        base_url=sim.url,
        app_token=TOKEN,
        secret_key=SECRET_KEY,
        webhook_secret=WEBHOOK_SECRET,
        timeout=timeout,
    )


@pytest.fixture
async def client(sim: Sim) -> AsyncIterator[SumsubClient]:
    # Patient enough for a busy CI machine; the timeout tests use `impatient` instead.
    kyc = _client(sim, timeout=5.0)
    yield kyc
    await kyc.close()


@pytest.fixture
async def impatient(sim: Sim) -> AsyncIterator[SumsubClient]:
    """Gives up well before the simulator's timeout fault (0.6 s) answers."""
    kyc = _client(sim, timeout=0.25)
    yield kyc
    await kyc.close()


def _uid(prefix: str = "trader") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _create(client: SumsubClient, external_user_id: str) -> str:
    return await client.create_applicant(
        external_user_id=external_user_id,
        level="basic-kyc-level",
        first_name="Ada",
        last_name="Lovelace",
        dob=date(1990, 12, 10),
        country="GB",
        email="ada@example.com",
    )


# -- signing and error mapping, against a mock transport ---------------------------------------


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> SumsubClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SumsubClient("https://api.sumsub.test", "tok", "key", "whs", http=http)


async def test_requests_are_signed_over_ts_method_path_and_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "a1"})

    kyc = _mock(handler)
    assert await _create(kyc, "t-1") == "a1"
    request = seen[0]
    ts = request.headers["X-App-Access-Ts"]
    path = b"/resources/applicants?levelName=basic-kyc-level"
    assert request.url.raw_path == path
    by_hand = hmac.new(b"key", ts.encode() + b"POST" + path + request.content, hashlib.sha256)
    assert request.headers["X-App-Access-Sig"] == by_hand.hexdigest()
    assert request.headers["X-App-Token"] == "tok"
    assert json.loads(request.content) == {
        "externalUserId": "t-1",
        "email": "ada@example.com",
        "fixedInfo": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "dob": "1990-12-10",
            "country": "GBR",  # alpha-2 in fxcrm, alpha-3 at Sumsub
        },
    }


async def test_ids_are_quoted_into_the_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"review": {"reviewStatus": "init"}})

    await _mock(handler).fetch_status("../../x?y")
    assert seen[0].url.raw_path == b"/resources/applicants/..%2F..%2Fx%3Fy/one"


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (404, False)]
)
async def test_http_errors_say_whether_to_retry(status: int, retryable: bool) -> None:
    kyc = _mock(lambda _: httpx.Response(status, json={"description": "nope", "code": status}))
    with pytest.raises(KycProviderError) as err:
        await kyc.fetch_status("a1")
    assert err.value.retryable is retryable
    assert err.value.status_code == status
    assert "nope" in str(err.value)


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_transport_failures_are_retryable(exc: Exception) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(KycProviderError) as err:
        await _mock(handler).submit("a1")
    assert err.value.retryable


async def test_submit_conflict_is_fine_while_pending_but_not_otherwise() -> None:
    def answer(review_status: str) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                return httpx.Response(409, json={"description": "conflict", "code": 409})
            return httpx.Response(200, json={"id": "a1", "review": {"reviewStatus": review_status}})

        return handler

    await _mock(answer("pending")).submit("a1")  # a retried submit: already under review
    with pytest.raises(KycProviderError) as err:
        await _mock(answer("init")).submit("a1")  # documents missing: a real refusal
    assert err.value.status_code == 409
    assert not err.value.retryable


async def test_fetch_status_maps_the_review_and_keeps_no_personal_data() -> None:
    applicant = {
        "id": "a1",
        "externalUserId": "t-1",
        "fixedInfo": {"firstName": "Ada", "lastName": "Lovelace"},
        "review": {
            "reviewStatus": "completed",
            "reviewDate": "2024-02-02 17:23:16+0000",
            "reviewResult": {
                "reviewAnswer": "RED",
                "reviewRejectType": "FINAL",
                "rejectLabels": ["FORGERY"],
                "clientComment": "internal",
            },
        },
    }
    result = await _mock(lambda _: httpx.Response(200, json=applicant)).fetch_status("a1")
    assert result.status == KycStatus.REJECTED_FINAL
    assert result.reasons == ["FORGERY"]
    assert result.client_comment == "internal"
    assert result.reviewed_at is not None and result.reviewed_at.year == 2024
    assert "fixedInfo" not in result.raw


# -- round trip against the simulator ----------------------------------------------------------


async def test_round_trip_create_upload_submit_status(client: SumsubClient, sim: Sim) -> None:
    external = _uid("sim-green")
    applicant_id = await _create(client, external)
    assert (await client.fetch_status(applicant_id)).status == KycStatus.APPLICANT_CREATED

    image_id = await client.upload_document(
        applicant_id, "PASSPORT", "GB", "passport.png", PNG, "image/png"
    )
    assert image_id.isdigit()
    held = sim.state.applicants[applicant_id]
    assert held.fixed_info["country"] == "GBR"
    assert held.documents[0]["idDocType"] == "PASSPORT"
    assert held.documents[0]["country"] == "GBR"
    assert held.documents[0]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert held.documents[0]["imageId"] == image_id

    await client.submit(applicant_id)
    # review delay 0: the simulator decides at once; poll briefly for the background task.
    for _ in range(200):
        result = await client.fetch_status(applicant_id)
        if result.status != KycStatus.SUBMITTED:
            break
    assert result.status == KycStatus.APPROVED
    assert result.reviewed_at is not None


async def test_submit_without_documents_is_refused(client: SumsubClient) -> None:
    applicant_id = await _create(client, _uid())
    with pytest.raises(KycProviderError) as err:
        await client.submit(applicant_id)
    assert err.value.status_code == 409
    assert not err.value.retryable


async def test_unknown_applicant_is_a_permanent_error(client: SumsubClient) -> None:
    with pytest.raises(KycProviderError) as err:
        await client.fetch_status("0" * 24)
    assert err.value.status_code == 404
    assert not err.value.retryable


@pytest.mark.parametrize(("token", "secret"), [("sbx:wrong", SECRET_KEY), (TOKEN, "wrong-key")])
async def test_bad_credentials_get_401(sim: Sim, token: str, secret: str) -> None:
    kyc = SumsubClient(sim.url, token, secret, WEBHOOK_SECRET, timeout=2)
    try:
        with pytest.raises(KycProviderError) as err:
            await _create(kyc, _uid())
    finally:
        await kyc.close()
    assert err.value.status_code == 401
    assert not err.value.retryable


async def test_unsigned_and_tampered_requests_get_401(sim: Sim) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        unsigned = await http.get("/resources/applicants/x/one")
        assert unsigned.status_code == 401
        assert unsigned.json()["code"] == 401
        # A valid signature for another path must not open this one.
        ts = str(int(time.time()))
        sig = request_signature(SECRET_KEY, ts, "GET", "/resources/applicants/y/one", b"")
        headers = {"X-App-Token": TOKEN, "X-App-Access-Ts": ts, "X-App-Access-Sig": sig}
        assert (await http.get("/resources/applicants/x/one", headers=headers)).status_code == 401
        # A stale timestamp is refused even with a correct signature.
        old = str(int(time.time()) - 3600)
        sig = request_signature(SECRET_KEY, old, "GET", "/resources/applicants/x/one", b"")
        headers = {"X-App-Token": TOKEN, "X-App-Access-Ts": old, "X-App-Access-Sig": sig}
        assert (await http.get("/resources/applicants/x/one", headers=headers)).status_code == 401


async def test_create_is_idempotent_across_a_timeout(
    client: SumsubClient, impatient: SumsubClient, sim: Sim
) -> None:
    external = _uid()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        await http.post("/_sim/faults", json={"timeout": True})
    with pytest.raises(KycProviderError) as err:
        await _create(impatient, external)  # the simulator creates it, then answers too late
    assert err.value.retryable
    # The retry meets "already exists" and returns the applicant the first call created.
    applicant_id = await _create(client, external)
    assert [a.id for a in sim.state.applicants.values() if a.external_user_id == external] == [
        applicant_id
    ]


async def test_timeout_fault_on_one_applicant_then_recovery(
    client: SumsubClient, impatient: SumsubClient, sim: Sim
) -> None:
    applicant_id = await _create(client, _uid())
    async with httpx.AsyncClient(base_url=sim.url) as http:
        answer = await http.post(
            "/_sim/faults", json={"applicant_id": applicant_id, "timeout": True}
        )
        assert answer.json()["timeout"] is True
    with pytest.raises(KycProviderError) as err:
        await impatient.fetch_status(applicant_id)
    assert err.value.retryable
    assert (await client.fetch_status(applicant_id)).status == KycStatus.APPLICANT_CREATED
