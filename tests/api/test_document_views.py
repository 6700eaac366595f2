"""Reviewers download KYC documents at the same time; each view is audited, none fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from fxcrm.models import AuditEvent, KycDocument
from tests import documents
from tests.api.inprocess import InProcessApp, inprocess_app

PASSWORD = "Correct-horse-2026"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[InProcessApp]:
    async with inprocess_app(database_url) as running:
        yield running


async def test_concurrent_downloads_are_all_served_and_audited(api: InProcessApp) -> None:
    trader_id, _ = await api.add_trader(PASSWORD)
    content = documents.png()
    async with api.sessions() as session, session.begin():
        doc = KycDocument(
            trader_id=trader_id,
            kind="identity",
            doc_type="PASSPORT",
            issuing_country="DE",
            content_type="image/png",
            size=len(content),
            sha256="0" * 64,
            filename="passport.png",
            content=content,
        )
        session.add(doc)
    _, email = await api.add_staff("onboarding", PASSWORD)
    token = await api.token("staff", email, PASSWORD)
    url = f"/backoffice/traders/{trader_id}/documents/{doc.id}"
    async with api.client() as http:
        for _ in range(3):  # rounds of eight reviewers at once
            responses = await asyncio.gather(*(http.get(url, headers=token) for _ in range(8)))
            assert [r.status_code for r in responses] == [200] * 8, [
                r.text for r in responses if r.status_code != 200
            ]
            assert all(r.content == content for r in responses)
            assert responses[0].headers["X-Content-Type-Options"] == "nosniff"
            assert responses[0].headers["Content-Disposition"].startswith("attachment")
    async with api.sessions() as session:
        views = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "kyc.document_viewed", AuditEvent.entity_id == doc.id)
        )
    assert views == 24
