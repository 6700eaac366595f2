"""Committed workflow histories replay against the current workflow code.

A change that would make running workflows non-deterministic fails here. When a change is meant
to alter the history (with workflow.patched for running ones), refresh the recordings with
FXCRM_RECORD_HISTORIES=1 pytest tests/workflows (see tests/workflows/histories.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from fxcrm.workflows.deposit import DepositWorkflow
from fxcrm.workflows.onboarding import OnboardingWorkflow
from fxcrm.workflows.transfer import TransferWorkflow
from fxcrm.workflows.withdrawal import WithdrawalWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
# A history's file name starts with its workflow's name.
WORKFLOWS = {
    "onboarding": OnboardingWorkflow,
    "deposit": DepositWorkflow,
    "withdrawal": WithdrawalWorkflow,
    "transfer": TransferWorkflow,
}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    workflow = WORKFLOWS[path.stem.split("_")[0]]
    replayer = Replayer(workflows=[workflow], data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    await replayer.replay_workflow(history)


def test_histories_are_committed() -> None:
    recorded = {path.stem.split("_")[0] for path in HISTORIES}
    assert recorded == set(WORKFLOWS), f"no committed history for {set(WORKFLOWS) - recorded}"
