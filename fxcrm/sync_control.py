"""Starts the platform sync workflow of every configured server, and beside it the server's IB
commission accrual (idempotent)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from fxcrm.models import PlatformServer
from fxcrm.workflows.ib_accrual import accrual_workflow_id
from fxcrm.workflows.ib_accrual_types import AccrualState
from fxcrm.workflows.platform_sync import sync_workflow_id
from fxcrm.workflows.platform_sync_types import SyncState


async def start_platform_syncs(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    interval_seconds: float = 5.0,
) -> list[str]:
    async with sessions() as session:
        servers = (await session.scalars(select(PlatformServer.id))).all()
    started = []
    for server_id in servers:
        await client.start_workflow(
            "PlatformSyncWorkflow",
            SyncState(server_id=server_id, interval_seconds=interval_seconds),
            id=sync_workflow_id(server_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        started.append(sync_workflow_id(server_id))
        # IB commissions accrued from the deals this sync ingests, seconds after they land.
        await client.start_workflow(
            "IbAccrualWorkflow",
            AccrualState(server_id=server_id),
            id=accrual_workflow_id(server_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        started.append(accrual_workflow_id(server_id))
    return started
