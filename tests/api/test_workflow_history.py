"""Whose brand each kind of workflow belongs to (for the auditors' history export), and payloads
decoded into readable JSON."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.api.workflow_history import Owner, readable, workflow_owner
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.db import transaction
from fxcrm.models import Brand, PlatformServer
from tests.e2e.money import new_trader

HISTORIES = Path(__file__).resolve().parents[1] / "workflows" / "histories"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_every_kind_of_workflow_has_its_brand(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    code = f"wf{uuid.uuid4().hex[:8]}"
    async with transaction(sessions) as session:
        brand = Brand(code=code, name=code, legal_entity=code, config={})
        session.add(brand)
        await session.flush()
        server = PlatformServer(
            id=f"mt5-{code}", brand_id=brand.id, platform="mt5", name="x", base_url="x", config={}
        )
        trader = new_trader(brand.id)
        session.add_all([server, trader])
        await session.flush()
        await append_audit(
            session,
            actor=Actor(type="staff", id="d", role="dealer"),
            action="trading_account.changed",
            entity_type="trading_account",
            entity_id=f"{server.id}:1",
            brand_id=brand.id,
            workflow_id=f"account-change-{code}",
        )
    mine = Owner(known=True, brand_id=brand.id)
    async with sessions() as session:
        assert await workflow_owner(session, f"onboarding-{trader.id}") == mine
        assert await workflow_owner(session, f"platform-sync-{server.id}") == mine
        assert await workflow_owner(session, f"ib-accrual-{server.id}") == mine
        assert await workflow_owner(session, f"ib-settlement-{code}-2026-11") == mine
        scheduled = f"ib-settlement-{code}-scheduled-2026-12-01T03:00:00Z"
        assert await workflow_owner(session, scheduled) == mine
        assert await workflow_owner(session, f"account-change-{code}") == mine
        # PSP-wide, like the PSP's unmatched breaks: every auditor's.
        psp = await workflow_owner(session, "psp-reconciliation-sim-2026-11-30")
        assert psp == Owner(known=True, brand_id=None)
        for unknown in ("onboarding-nobody", "deposit-nothing", "refund-x", "temporal-sys"):
            assert await workflow_owner(session, unknown) == Owner(known=False), unknown


def test_payloads_become_readable_json() -> None:
    history = json.loads((HISTORIES / "deposit_declined.json").read_text())
    decoded = readable(history)
    started = decoded["events"][0]["workflowExecutionStartedEventAttributes"]
    assert started["input"]["payloads"][0]["method"] == "card"
    assert started["workflowType"] == {"name": "DepositWorkflow"}  # the rest as it was
    assert "anNvbi9wbGFpbg==" not in json.dumps(decoded)  # no encoded payload left

    odd = {
        "result": {"payloads": [{"metadata": {"encoding": _b64("binary/null")}}]},
        "details": {
            "payloads": [{"metadata": {"encoding": _b64("binary/encrypted")}, "data": "AAEC"}]
        },
        "searchAttributes": {
            "indexedFields": {
                "Stage": {
                    "metadata": {"encoding": _b64("json/plain"), "type": _b64("Keyword")},
                    "data": _b64('"documents"'),
                }
            }
        },
    }
    assert readable(odd) == {
        "result": {"payloads": [None]},
        "details": {"payloads": [{"metadata": {"encoding": "binary/encrypted"}, "data": "AAEC"}]},
        "searchAttributes": {"indexedFields": {"Stage": "documents"}},
    }
