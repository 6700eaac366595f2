"""Staff-typed reasons and names end up in the audit trail: stripped, NFC, and never holding
control, bidi-override or zero-width characters (an auditor must read what was written)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from fxcrm.api.routes.accounts import ChangeRequest
from fxcrm.api.routes.backoffice import AccountTypeRequest, KycDecisionRequest
from fxcrm.api.routes.ib_admin import AttributionCreate, LinkCreate, MoveRequest, PlanCreate
from fxcrm.api.routes.reconciliation import ResolveRequest

CASES: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (ChangeRequest, {"leverage": 100}, "reason"),
    (KycDecisionRequest, {"decision": "approve"}, "reason"),
    (AccountTypeRequest, {"account_type": "pro"}, "reason"),
    (MoveRequest, {"parent_id": None, "effective_from": "2026-01-01T00:00:00Z"}, "reason"),
    (AttributionCreate, {"ib_id": "x", "effective_from": "2026-01-01T00:00:00Z"}, "reason"),
    (ResolveRequest, {"action": "no_action"}, "reason"),
    (LinkCreate, {}, "name"),
    (PlanCreate, {}, "name"),
]


@pytest.mark.parametrize(("model", "base", "field"), CASES, ids=[c[0].__name__ for c in CASES])
def test_typed_text_is_cleaned_or_refused(
    model: type[BaseModel], base: dict[str, Any], field: str
) -> None:
    accepted = model.model_validate({**base, field: "  client reque\u0301st\n"})
    assert getattr(accepted, field) == "client requést"
    for bad in ["     ", "ok\u202e reason", "ok\u200b reason", "ok\x00 reason", "ok\u2066reason"]:
        with pytest.raises(ValidationError):
            model.model_validate({**base, field: bad})
