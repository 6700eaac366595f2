"""The engine's ceiling: a workflow that runs one trivial activity (own module for the sandbox)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def trivial_activity(n: int) -> int:
    return n + 1


@workflow.defn
class TrivialWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(
            trivial_activity, n, start_to_close_timeout=timedelta(seconds=30)
        )
