"""Recording the workflow histories that tests/workflows/test_replay.py replays.

`FXCRM_RECORD_HISTORIES=1 pytest tests/workflows` refreshes them; commit the result. The file name's
prefix (before the first "_") names the workflow (see test_replay.WORKFLOWS).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

HISTORIES = Path(__file__).parent / "histories"


async def record(handle: WorkflowHandle[Any, Any], name: str) -> None:
    if os.environ.get("FXCRM_RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())
