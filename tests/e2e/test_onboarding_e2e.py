"""Onboarding end to end: real API, worker, Temporal dev server, MT5 and KYC simulators."""

from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import func, select

from fxcrm.models import ProviderWebhook, TradingAccount
from tests.e2e.portal import bearer, onboarding, register, staff_token, upload_both
from tests.e2e.stack import Stack, eventually


async def _stage(stack: Stack, token: str, stage: str, within: float = 45.0) -> dict[str, object]:
    async def check() -> dict[str, object] | None:
        view = await onboarding(stack.http, token)
        return view if view["stage"] == stage else None

    return await eventually(check, within=within)  # type: ignore[no-any-return]


def _mt5_users_of(stack: Stack, trader_id: str) -> list[object]:
    return [u for u in stack.mt5.state.users.values() if trader_id in json.dumps(u, default=str)]


async def test_clean_trader_ends_active_with_exactly_one_mt5_account(stack: Stack) -> None:
    trader_id, token = await register(stack.http)
    view = await onboarding(stack.http, token)
    assert view["stage"] == "documents"
    assert view["documents_missing"] == ["identity", "address"]
    await upload_both(stack.http, token)
    view = await _stage(stack, token, "active")
    login = view["login"]
    assert isinstance(login, int)

    accounts = (await stack.http.get("/portal/me/accounts", headers=bearer(token))).json()
    assert [a["login"] for a in accounts] == [login]
    assert accounts[0]["group"] == "real\\retail\\std"
    assert len(_mt5_users_of(stack, trader_id)) == 1

    first = await stack.http.post(
        f"/portal/me/accounts/{accounts[0]['account_id']}/credentials", headers=bearer(token)
    )
    assert first.status_code == 200
    assert first.json()["login"] == login
    again = await stack.http.post(
        f"/portal/me/accounts/{accounts[0]['account_id']}/credentials", headers=bearer(token)
    )
    assert again.status_code == 410

    auditor = await staff_token(stack.http, "auditor")
    events = (
        await stack.http.get(
            "/audit/events", params={"entity_id": trader_id, "limit": 1000}, headers=bearer(auditor)
        )
    ).json()
    actions = [e["action"] for e in events]
    assert "trader.registered" in actions and "onboarding.stage.active" in actions
    assert (await stack.http.get("/audit/verify", headers=bearer(auditor))).json()["ok"] is True
    history = await stack.http.get(
        f"/audit/workflows/onboarding-{trader_id}/history", headers=bearer(auditor)
    )
    assert history.status_code == 200 and history.json()["events"]


async def test_ofac_name_spelled_differently_waits_for_compliance(stack: Stack) -> None:
    from tests.e2e.sanctioned import SANCTIONED

    trader_id, token = await register(stack.http, **SANCTIONED)
    await upload_both(stack.http, token)
    await _stage(stack, token, "compliance_review")

    onboarding_staff = await staff_token(stack.http, "onboarding")
    refused = await stack.http.post(
        f"/backoffice/traders/{trader_id}/compliance-decision",
        json={"decision": "clear", "reason": "not the listed person"},
        headers=bearer(onboarding_staff),
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")

    compliance = await staff_token(stack.http, "compliance")
    file = (
        await stack.http.get(f"/backoffice/traders/{trader_id}", headers=bearer(compliance))
    ).json()
    assert file["screenings"][0]["decision"] == "possible"
    assert file["screenings"][0]["matches"], "the match evidence is kept"
    decided = await stack.http.post(
        f"/backoffice/traders/{trader_id}/compliance-decision",
        json={"decision": "reject", "reason": "same person as the SDN entry"},
        headers=bearer(compliance),
    )
    assert decided.status_code == 202
    await _stage(stack, token, "rejected")
    async with stack.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(TradingAccount)
            .where(TradingAccount.trader_id == trader_id)
        )
    assert count == 0


async def test_forged_webhook_is_refused_and_changes_nothing(stack: Stack) -> None:
    # The provider puts this applicant on hold; a forged GREEN must not approve it.
    trader_id, token = await register(stack.http, email="eve.sim-onhold@example.com")
    await upload_both(stack.http, token)

    async def on_hold() -> bool:
        return (await onboarding(stack.http, token))["kyc_status"] == "MANUAL_REVIEW"

    await eventually(on_hold, within=30)
    async with stack.sessions() as session:
        from fxcrm.models import Trader

        trader = await session.get(Trader, trader_id)
        assert trader is not None
        applicant = trader.kyc_applicant_id
    body = json.dumps(
        {
            "applicantId": applicant,
            "externalUserId": trader_id,
            "type": "applicantReviewed",
            "reviewStatus": "completed",
            "createdAtMs": "2026-11-23 10:00:00.000",
            "reviewResult": {"reviewAnswer": "GREEN"},
        }
    ).encode()
    forged = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    response = await stack.http.post(
        "/webhooks/kyc/sumsub",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Payload-Digest": forged,
            "X-Payload-Digest-Alg": "HMAC_SHA256_HEX",
        },
    )
    assert response.status_code == 401
    assert response.json()["title"] == "Invalid signature"
    async with stack.sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(ProviderWebhook)
            .where(ProviderWebhook.raw_body == body)
        )
    assert stored == 0
    view = await onboarding(stack.http, token)
    assert (view["stage"], view["kyc_status"]) == ("kyc_review", "MANUAL_REVIEW")


async def test_resubmission_then_approval(stack: Stack) -> None:
    _, token = await register(stack.http, email="paul.sim-red-retry@example.com")
    await upload_both(stack.http, token)

    async def back_to_documents() -> dict[str, object] | None:
        view = await onboarding(stack.http, token)
        return view if view["stage"] == "documents" and view["message"] else None

    view = await eventually(back_to_documents, within=45)
    assert view["documents_missing"] == ["identity", "address"]
    await upload_both(stack.http, token)
    await _stage(stack, token, "active")


async def test_final_rejection_by_the_provider(stack: Stack) -> None:
    _, token = await register(stack.http, email="mallory.sim-red-final@example.com")
    await upload_both(stack.http, token)
    view = await _stage(stack, token, "rejected")
    assert view["login"] is None


async def test_vip_granted_by_staff_opens_in_the_vip_group(stack: Stack) -> None:
    trader_id, token = await register(stack.http)
    staff = await staff_token(stack.http, "onboarding")
    granted = await stack.http.post(
        f"/backoffice/traders/{trader_id}/account-type",
        json={"account_type": "vip", "reason": "large introducer"},
        headers=bearer(staff),
    )
    assert granted.status_code == 200
    await upload_both(stack.http, token)
    await _stage(stack, token, "active")
    accounts = (await stack.http.get("/portal/me/accounts", headers=bearer(token))).json()
    assert [(a["group"], a["leverage"]) for a in accounts] == [("real\\pro\\std", 500)]
