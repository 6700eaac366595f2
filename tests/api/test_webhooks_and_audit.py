"""Webhook de-duplication, audit filters and chain verification over the API."""

from __future__ import annotations

import json

from fxcrm.adapters.kyc.sumsub import payload_digest
from tests.e2e.portal import bearer, register, staff_token
from tests.e2e.stack import Stack


async def test_replayed_webhook_is_acknowledged_once(stack: Stack) -> None:
    body = json.dumps(
        {
            "applicantId": "unknown-applicant",
            "externalUserId": "x",
            "type": "applicantPending",
            "reviewStatus": "pending",
            "createdAtMs": "2026-11-23 10:00:00.000",
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Payload-Digest": payload_digest(
            stack.settings.kyc_webhook_secret, body, "HMAC_SHA256_HEX"
        ),
        "X-Payload-Digest-Alg": "HMAC_SHA256_HEX",
    }
    first = await stack.http.post("/webhooks/kyc/sumsub", content=body, headers=headers)
    assert first.status_code == 200 and first.json()["status"] == "unmatched"
    again = await stack.http.post("/webhooks/kyc/sumsub", content=body, headers=headers)
    assert again.status_code == 200
    missing = await stack.http.post(
        "/webhooks/kyc/sumsub", content=body, headers={"Content-Type": "application/json"}
    )
    assert missing.status_code == 401


async def test_audit_filters_and_verification(stack: Stack) -> None:
    trader_id, _ = await register(stack.http)
    auditor = await staff_token(stack.http, "auditor")
    events = (
        await stack.http.get(
            "/audit/events",
            params={"entity_id": trader_id, "action": "trader.registered"},
            headers=bearer(auditor),
        )
    ).json()
    assert len(events) == 1
    event = events[0]
    assert event["actor_type"] == "trader" and event["workflow_id"] == f"onboarding-{trader_id}"
    assert "email" not in json.dumps(event["after"])  # no PII in the audit payload
    report = (await stack.http.get("/audit/verify", headers=bearer(auditor))).json()
    assert report["ok"] and report["events_checked"] >= 1
    bad = await stack.http.get("/audit/events", params={"limit": 5000}, headers=bearer(auditor))
    assert bad.status_code == 422
