"""AccountChangeWorkflow (`account-change-{id}`): one dealer change to one trading account.

A workflow, not a bare call, so the change, its read-back and its audit entry finish together even
if the API or the worker restarts; the history shows who asked for what.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.platform_sync import PlatformSyncActivities
    from fxcrm.workflows.platform_sync_types import AccountChange, AccountChangeResult


# Python errors from input the activity cannot use (a login past 64 bits overflows the driver):
# failing at once beats ten attempts while the dealer's request hangs.
BAD_INPUT_ERRORS = ["OverflowError", "ValueError", "TypeError", "ValidationError"]


@workflow.defn
class AccountChangeWorkflow:
    @workflow.run
    async def run(self, change: AccountChange) -> AccountChangeResult:
        return await workflow.execute_activity_method(
            PlatformSyncActivities.change_account,
            change,
            start_to_close_timeout=timedelta(seconds=60),
            # Transient platform trouble is retried for a few minutes; refusals fail at once, and
            # so does a change the activity cannot even express (a retry repeats the same bug).
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(seconds=30),
                maximum_attempts=10,
                non_retryable_error_types=BAD_INPUT_ERRORS,
            ),
        )
