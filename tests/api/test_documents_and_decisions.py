"""Document uploads are checked before anything is stored; decisions are checked against the stage."""

from __future__ import annotations

from sqlalchemy import func, select

from fxcrm.models import KycDocument
from tests.e2e.portal import PDF, PNG, bearer, onboarding, register, staff_token, upload
from tests.e2e.stack import Stack, eventually


async def _docs(stack: Stack, trader_id: str) -> int:
    async with stack.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(KycDocument)
                .where(KycDocument.trader_id == trader_id)
            )
            or 0
        )


async def test_bad_documents_are_refused(stack: Stack) -> None:
    trader_id, token = await register(stack.http)
    cases = [
        (("identity", "UTILITY_BILL", PNG, "image/png", "X1"), 422),  # wrong type for the kind
        (("identity", "PASSPORT", PNG, "image/png", None), 422),  # no document number
        (("identity", "PASSPORT", b"GIF89a....", "image/gif", "X1"), 415),
        (("identity", "PASSPORT", PDF, "image/png", "X1"), 415),  # declared PNG, content PDF
        (("identity", "PASSPORT", b"", "image/png", "X1"), 422),
        (("identity", "PASSPORT", PNG, "image/png", " - "), 422),  # a number without characters
        (
            (
                "address",
                "UTILITY_BILL",
                b"%PDF-" + b"0" * (10 * 1024 * 1024),
                "application/pdf",
                None,
            ),
            413,
        ),
    ]
    for (kind, doc_type, content, content_type, number), status in cases:
        response = await upload(stack.http, token, kind, doc_type, content, content_type, number)
        assert response.status_code == status, (doc_type, content_type, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await _docs(stack, trader_id) == 0


async def test_staff_decision_in_the_wrong_stage_is_a_conflict(stack: Stack) -> None:
    trader_id, _ = await register(stack.http)
    onboarding_staff = await staff_token(stack.http, "onboarding")
    early = await stack.http.post(
        f"/backoffice/traders/{trader_id}/kyc-decision",
        json={"decision": "approve", "reason": "no documents yet"},
        headers=bearer(onboarding_staff),
    )
    assert early.status_code == 409
    compliance = await staff_token(stack.http, "compliance")
    wrong = await stack.http.post(
        f"/backoffice/traders/{trader_id}/compliance-decision",
        json={"decision": "clear", "reason": "nothing to clear"},
        headers=bearer(compliance),
    )
    assert wrong.status_code == 409
    bad = await stack.http.post(
        f"/backoffice/traders/{trader_id}/kyc-decision",
        json={"decision": "maybe", "reason": "x"},
        headers=bearer(onboarding_staff),
    )
    assert bad.status_code == 422


async def test_staff_can_request_documents_again(stack: Stack) -> None:
    trader_id, token = await register(stack.http, email="rita.sim-onhold@example.com")
    for kind, doc_type, content, ctype, number in (
        ("identity", "PASSPORT", PNG, "image/png", "C01X00T47"),
        ("address", "UTILITY_BILL", PDF, "application/pdf", None),
    ):
        assert (
            await upload(stack.http, token, kind, doc_type, content, ctype, number)
        ).status_code == 201
    # Uploads outside the documents stage are refused.

    async def on_hold() -> bool:
        return (await onboarding(stack.http, token))["kyc_status"] == "MANUAL_REVIEW"

    await eventually(on_hold, within=30)
    late = await upload(stack.http, token, "address", "UTILITY_BILL", PDF, "application/pdf")
    assert late.status_code == 409
    staff = await staff_token(stack.http, "onboarding")
    response = await stack.http.post(
        f"/backoffice/traders/{trader_id}/kyc-decision",
        json={"decision": "request_documents", "reason": "proof of address older than 3 months"},
        headers=bearer(staff),
    )
    assert response.status_code == 202

    async def back() -> dict[str, object] | None:
        view = await onboarding(stack.http, token)
        return view if view["stage"] == "documents" else None

    view = await eventually(back, within=30)
    assert "older than 3 months" in str(view["message"])
    document = await stack.http.get(f"/backoffice/traders/{trader_id}", headers=bearer(staff))
    doc_id = document.json()["documents"][0]["document_id"]
    content = await stack.http.get(
        f"/backoffice/traders/{trader_id}/documents/{doc_id}", headers=bearer(staff)
    )
    assert content.status_code == 200 and content.content in (PNG, PDF)


async def test_reused_identity_document_is_flagged_for_staff(stack: Stack) -> None:
    number = "P-DUP-77123"
    first_id, first = await register(stack.http)
    assert (
        await upload(stack.http, first, "identity", "PASSPORT", PNG, "image/png", number)
    ).status_code == 201
    second_id, second = await register(stack.http)
    assert (
        await upload(stack.http, second, "identity", "PASSPORT", PNG, "image/png", "pdup 77123")
    ).status_code == 201
    assert (
        await upload(stack.http, second, "address", "UTILITY_BILL", PDF, "application/pdf")
    ).status_code == 201
    staff = await staff_token(stack.http, "onboarding")

    async def flagged() -> dict[str, object] | None:
        file = (
            await stack.http.get(f"/backoffice/traders/{second_id}", headers=bearer(staff))
        ).json()
        state = file["onboarding"]
        return (
            file
            if state and state["duplicate_identity"] and state["kyc_status"] == "APPROVED"
            else None
        )

    file = await eventually(flagged, within=30)
    assert (
        file["onboarding"]["stage"] == "kyc_review"
    )  # approved by the provider, held for a person
    assert first_id in file["onboarding"]["manual_review_reason"]
    assert file["documents"][0]["duplicate_identity"] or file["documents"][1]["duplicate_identity"]


async def test_staff_grant_vip_before_the_account_opens(stack: Stack) -> None:
    trader_id, token = await register(stack.http, email="vera.sim-onhold@example.com")
    staff = await staff_token(stack.http, "onboarding")
    dealer = await staff_token(stack.http, "dealer")
    body = {"account_type": "vip", "reason": "introduced by the head of sales"}
    denied = await stack.http.post(
        f"/backoffice/traders/{trader_id}/account-type", json=body, headers=bearer(dealer)
    )
    assert denied.status_code == 403
    granted = await stack.http.post(
        f"/backoffice/traders/{trader_id}/account-type", json=body, headers=bearer(staff)
    )
    assert granted.status_code == 200 and granted.json()["account_type"] == "vip"
    pro = await stack.http.post(
        f"/backoffice/traders/{trader_id}/account-type",
        json={"account_type": "pro", "reason": "no questionnaire"},
        headers=bearer(staff),
    )
    assert pro.status_code == 422
    # The trader cannot pick VIP themselves.
    assert (await stack.http.get("/portal/me", headers=bearer(token))).json()[
        "account_type"
    ] == "vip"
