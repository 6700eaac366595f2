"""Finance's IB settlement endpoints through the real API and worker: roles, an open period
refused with 422, a closed period settled by the workflow, the list, CSV and PDF statements."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fxcrm.domain.ib.settlement import period_of
from fxcrm.seed import DEMO_BRAND
from tests.activities.test_ib_settlement import World
from tests.api.test_reconciliation_api import demo_brand
from tests.e2e.portal import bearer, staff_token
from tests.e2e.stack import Stack, eventually

PERIOD = "2001-01"  # long past: closing it moves no other test's deals


async def test_settle_list_and_statements(stack: Stack) -> None:
    finance = bearer(await staff_token(stack.http, "finance"))
    auditor = bearer(await staff_token(stack.http, "auditor"))
    url = "/backoffice/ib/settlements"

    assert (await stack.http.post(url, json={"period": PERIOD}, headers=auditor)).status_code == 403
    current = period_of(datetime.now(UTC))
    refused = await stack.http.post(url, json={"period": current}, headers=finance)
    assert refused.status_code == 422 and refused.json()["code"] == "period_open"
    bad = await stack.http.post(url, json={"period": "2001-13"}, headers=finance)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_period"

    world = World(stack.sessions, await demo_brand(stack), DEMO_BRAND)
    await world.ib("api-ib")
    await world.trader("api-client", "api-ib")
    await world.trade("api-client", "api-ib", "60.505", PERIOD)
    started = await stack.http.post(url, json={"period": PERIOD}, headers=finance)
    assert started.status_code == 202, started.text
    assert started.json()["workflow_id"] == f"ib-settlement-{DEMO_BRAND}-{PERIOD}"

    async def listed() -> list[dict[str, str]]:
        response = await stack.http.get(url, params={"period": PERIOD}, headers=auditor)
        assert response.status_code == 200
        return [r for r in response.json() if r["ib_id"] == world.ibs["api-ib"]]

    (row,) = await eventually(listed)
    assert (row["status"], Decimal(row["payable"])) == ("paid", Decimal("60.5"))
    csv = await stack.http.get(f"{url}/{row['id']}/statement.csv", headers=auditor)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "trade," in csv.text and ",60.505," in csv.text
    pdf = await stack.http.get(f"{url}/{row['id']}/statement.pdf", headers=finance)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-1.4")
    missing = await stack.http.get(f"{url}/nope/statement.csv", headers=finance)
    assert missing.status_code == 404
