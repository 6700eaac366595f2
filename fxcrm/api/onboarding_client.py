"""How the API starts, signals and queries onboarding workflows (by name: no workflow code here)."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from fxcrm.api.errors import Problem
from fxcrm.core.temporal import BRAND, STAGE, TRADER_ID
from fxcrm.workflows.onboarding_types import OnboardingInput, OnboardingState, Stage

WORKFLOW_NAME = "OnboardingWorkflow"


def onboarding_workflow_id(trader_id: str) -> str:
    return f"onboarding-{trader_id}"


async def start_onboarding(
    client: Client, task_queue: str, inp: OnboardingInput, brand_code: str
) -> None:
    await client.start_workflow(
        WORKFLOW_NAME,
        inp,
        id=onboarding_workflow_id(inp.trader_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(TRADER_ID, inp.trader_id),
                SearchAttributePair(BRAND, brand_code),
                SearchAttributePair(STAGE, Stage.DOCUMENTS.value),
            ]
        ),
    )


def handle(client: Client, trader_id: str) -> WorkflowHandle[object, object]:
    return client.get_workflow_handle(onboarding_workflow_id(trader_id))


async def onboarding_state(client: Client, trader_id: str) -> OnboardingState:
    try:
        return await handle(client, trader_id).query("get_state", result_type=OnboardingState)
    except RPCError as exc:
        raise Problem(
            404, "No onboarding", f"no onboarding workflow for this trader ({exc.message})"
        ) from exc


async def signal(client: Client, trader_id: str, name: str, arg: object) -> None:
    try:
        await handle(client, trader_id).signal(name, arg)
    except RPCError as exc:
        raise Problem(
            409, "Onboarding is closed", f"the onboarding workflow is not running ({exc.message})"
        ) from exc
