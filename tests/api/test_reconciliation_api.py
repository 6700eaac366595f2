"""Finance's reconciliation endpoints through the real API: roles, brand scoping, bad input,
resolutions as audited ledger corrections (once), on-demand runs, refund requests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from fxcrm.domain.ledger import client_wallet_code, suspense_code
from fxcrm.models import AuditEvent, Brand, LedgerTransfer
from fxcrm.models.payments import ReconciliationBreak, ReconciliationRun
from fxcrm.seed import DEMO_BRAND
from fxcrm.workflows.reconciliation_types import ReconciliationResult
from tests.e2e.portal import bearer, register, staff_token
from tests.e2e.stack import Stack
from tests.workflows.reconciliation_seed import balance, invariants_ok, seed_deposit, seed_trader


async def demo_brand(stack: Stack) -> str:
    async with stack.sessions() as session:
        return (await session.scalars(select(Brand.id).where(Brand.code == DEMO_BRAND))).one()


async def seed_breaks(stack: Stack) -> dict[str, Any]:
    """A run with three breaks: an under-credited demo deposit, a PSP movement for no payment of
    ours, a missing platform credit."""
    brand = await demo_brand(stack)
    psp = f"api{uuid.uuid4().hex[:8]}"
    _, trader = await seed_trader(stack.sessions, brand)
    payment = await seed_deposit(stack.sessions, brand, trader, psp=psp, amount=5_000)
    async with stack.sessions() as session, session.begin():
        run = ReconciliationRun(psp=psp, day=date(2024, 1, 2), status="breaks", lines=3, breaks=3)
        session.add(run)
        await session.flush()

        def add(kind: str, payment_id: str | None, expected: Any, actual: Any) -> str:
            row = ReconciliationBreak(
                id=uuid.uuid4().hex,
                run_id=run.id,
                break_key=f"{kind}:payment:{payment_id or 'ghost'}",
                psp=psp,
                kind=kind,
                payment_id=payment_id,
                expected=expected,
                actual=actual,
                status="open",
            )
            session.add(row)
            return row.id

        short = add(
            "amount_mismatch",
            payment,
            {"currency": "USD", "amount": 5_000},
            {"currency": "USD", "amount": 5_100},
        )
        ghost = add("missing_in_ledger", None, None, {"currency": "USD", "amount": 3_300})
        platform = add(
            "platform_mismatch",
            payment,
            {"currency": "USD", "amount": 5_000},
            {"currency": "USD", "amount": 5_000},
        )
        await session.flush()
    return {
        "brand": brand,
        "psp": psp,
        "trader": trader,
        "payment": payment,
        "run": run.id,
        "short": short,
        "ghost": ghost,
        "platform": platform,
    }


async def test_who_may_read_and_resolve(stack: Stack) -> None:
    seeded = await seed_breaks(stack)
    _, trader = await register(stack.http)
    for token in (
        trader,
        await staff_token(stack.http, "dealer"),
        await staff_token(stack.http, "support"),
    ):
        assert (
            await stack.http.get("/backoffice/reconciliation/breaks", headers=bearer(token))
        ).status_code == 403
        assert (
            await stack.http.get("/backoffice/reconciliation/runs", headers=bearer(token))
        ).status_code == 403
    auditor = await staff_token(stack.http, "auditor")
    listed = await stack.http.get(
        "/backoffice/reconciliation/breaks",
        params={"status": "open", "psp": seeded["psp"]},
        headers=bearer(auditor),
    )
    assert listed.status_code == 200
    by_id = {item["break_id"]: item for item in listed.json()}
    assert set(by_id) == {seeded["short"], seeded["ghost"], seeded["platform"]}
    assert by_id[seeded["short"]]["brand_id"] == seeded["brand"]
    assert by_id[seeded["ghost"]]["brand_id"] is None
    refused = await stack.http.post(
        f"/backoffice/reconciliation/breaks/{seeded['short']}/resolve",
        json={"action": "no_action", "reason": "auditors only read"},
        headers=bearer(auditor),
    )
    assert refused.status_code == 403
    bad_status = await stack.http.get(
        "/backoffice/reconciliation/breaks", params={"status": "maybe"}, headers=bearer(auditor)
    )
    assert bad_status.status_code == 422


async def test_resolutions_are_audited_corrections_made_once(stack: Stack) -> None:
    seeded = await seed_breaks(stack)
    finance = bearer(await staff_token(stack.http, "finance"))

    def resolve(break_id: str, **body: Any):  # type: ignore[no-untyped-def]
        return stack.http.post(
            f"/backoffice/reconciliation/breaks/{break_id}/resolve", json=body, headers=finance
        )

    assert (await resolve(uuid.uuid4().hex, action="no_action", reason="x" * 5)).status_code == 404
    assert (await resolve(seeded["short"], action="post_correction")).status_code == 422
    assert (await resolve(seeded["short"], action="refund", reason="nope")).status_code == 422
    assert (
        await resolve(seeded["short"], action="post_correction", reason="bad", amount="-1")
    ).status_code == 422
    wallet = client_wallet_code(seeded["trader"], "USD")
    assert await balance(stack.sessions, seeded["brand"], wallet) == 5_000  # nothing moved

    # The PSP received 1.00 more than was credited: the client is owed it.
    done = await resolve(seeded["short"], action="post_correction", reason="PSP received 51.00")
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "resolved" and body["correction_transfer_id"]
    assert await balance(stack.sessions, seeded["brand"], wallet) == 5_100
    again = await resolve(seeded["short"], action="post_correction", reason="PSP received 51.00")
    assert again.status_code == 409
    assert await balance(stack.sessions, seeded["brand"], wallet) == 5_100
    async with stack.sessions() as session:
        correction = await session.scalar(
            select(LedgerTransfer).where(
                LedgerTransfer.idempotency_key == f"recon:{seeded['short']}"
            )
        )
        audit = await session.scalar(
            select(AuditEvent).where(
                AuditEvent.entity_id == seeded["short"],
                AuditEvent.action == "reconciliation.break_resolved",
            )
        )
    assert correction is not None and (correction.kind, correction.amount) == ("correction", 100)
    assert audit is not None and audit.after["reason"] == "PSP received 51.00"

    # A PSP movement for no payment of ours: the brand must be named; it goes to suspense (which
    # other tests' dealer operations on the platforms move too: what counts is this change).
    suspense_before = await balance(stack.sessions, seeded["brand"], suspense_code("USD"))
    ghost = await resolve(seeded["ghost"], action="post_correction", reason="unknown money")
    assert ghost.status_code == 422
    ghost = await resolve(
        seeded["ghost"], action="post_correction", reason="unknown money", brand_id=seeded["brand"]
    )
    assert ghost.status_code == 200, ghost.text
    suspense_after = await balance(stack.sessions, seeded["brand"], suspense_code("USD"))
    assert suspense_after - suspense_before <= -3_300

    # A platform mismatch is not corrected in PSP clearing.
    platform = await resolve(seeded["platform"], action="write_off", reason="wrong place")
    assert platform.status_code == 422
    explained = await resolve(seeded["platform"], action="no_action", reason="dealing credited it")
    assert explained.status_code == 200 and explained.json()["correction_transfer_id"] is None
    resolved = await stack.http.get(
        "/backoffice/reconciliation/breaks",
        params={"status": "open", "run_id": seeded["run"]},
        headers=finance,
    )
    assert resolved.json() == []
    await invariants_ok(stack.sessions)


async def test_on_demand_runs(stack: Stack) -> None:
    finance = bearer(await staff_token(stack.http, "finance"))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    future = await stack.http.post(
        "/backoffice/reconciliation/runs", json={"psp": "sim", "day": tomorrow}, headers=finance
    )
    assert future.status_code == 422
    unknown = await stack.http.post(
        "/backoffice/reconciliation/runs",
        json={"psp": "nope", "day": "2024-01-01"},
        headers=finance,
    )
    assert unknown.status_code == 422
    assert (
        await stack.http.post(
            "/backoffice/reconciliation/runs",
            json={"psp": "sim", "day": "yesterday"},
            headers=finance,
        )
    ).status_code == 422
    dealer = bearer(await staff_token(stack.http, "dealer"))
    assert (
        await stack.http.post(
            "/backoffice/reconciliation/runs",
            json={"psp": "sim", "day": "2024-01-01"},
            headers=dealer,
        )
    ).status_code == 403

    day = "2023-12-31"  # the simulator booked nothing then: a clean run
    started = await stack.http.post(
        "/backoffice/reconciliation/runs", json={"psp": "sim", "day": day}, headers=finance
    )
    assert started.status_code == 202, started.text
    handle = stack.client.get_workflow_handle(
        started.json()["workflow_id"], result_type=ReconciliationResult
    )
    result = await handle.result()
    assert result.status == "clean"
    runs = await stack.http.get(
        "/backoffice/reconciliation/runs", params={"psp": "sim"}, headers=finance
    )
    assert any(run["day"] == day and run["status"] == "clean" for run in runs.json())


async def test_refund_requests_are_checked(stack: Stack) -> None:
    brand = await demo_brand(stack)
    _, trader = await seed_trader(stack.sessions, brand)
    failed = await seed_deposit(
        stack.sessions, brand, trader, psp="sim", amount=1_000, status="failed"
    )
    finance = bearer(await staff_token(stack.http, "finance"))
    support = bearer(await staff_token(stack.http, "support"))
    body = {"amount": "5.00", "reason": "client asked"}
    assert (
        await stack.http.post(f"/backoffice/payments/{failed}/refund", json=body, headers=support)
    ).status_code == 403
    assert (
        await stack.http.post(
            f"/backoffice/payments/{uuid.uuid4().hex}/refund", json=body, headers=finance
        )
    ).status_code == 404
    assert (
        await stack.http.post(f"/backoffice/payments/{failed}/refund", json=body, headers=finance)
    ).status_code == 409
    done = await seed_deposit(stack.sessions, brand, trader, psp="sim", amount=1_000)
    for bad in (
        {"amount": "10.01", "reason": "too much"},
        {"amount": "0", "reason": "zero"},
        {"amount": "1.001", "reason": "too fine"},
        {"amount": "5.00"},
    ):
        response = await stack.http.post(
            f"/backoffice/payments/{done}/refund", json=bad, headers=finance
        )
        assert response.status_code == 422, (bad, response.text)
