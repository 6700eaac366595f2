"""A third-party MT5 Web API client, used unchanged, against fxcrm's MT5 simulator.

The client is the npm package `mt5-sdk` (pinned in tests/interop/package.json; `make install`
runs `npm ci --prefix tests/interop`). It follows MetaQuotes' JavaScript sample: challenge-response
login on one keep-alive connection (`maxSockets = 1`), no cookies, JSON bodies sent as form data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread
from tests.adapters.conftest import MANAGER, MANAGER_PASSWORD

NODE = shutil.which("node")
INTEROP = Path(__file__).resolve().parents[1] / "interop"

pytestmark = pytest.mark.skipif(
    NODE is None, reason="Node.js is not installed: the npm mt5-sdk interop test needs `node`"
)


@pytest.fixture(scope="module")
def mt5_sdk() -> Path:
    """tests/interop with mt5-sdk installed from the lock file (normally done by `make install`)."""
    if not (INTEROP / "node_modules" / "mt5-sdk" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm not found: install Node.js with npm, then `npm ci --prefix tests/interop`"
            )
        subprocess.run(
            [npm, "ci", "--prefix", str(INTEROP), "--no-audit", "--no-fund"],
            check=True,
            timeout=300,
            capture_output=True,
        )
    return INTEROP


def _numbers_are_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_numbers_are_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(_numbers_are_strings(v) for v in value)
    return isinstance(value, str)


def test_mt5_sdk_works_unchanged(mt5_sdk: Path, mt5_sim: Mt5SimulatorThread) -> None:
    state = mt5_sim.state
    user = state.add_user(
        group="real\\retail\\std",
        leverage=100,
        password_main="Trader!2026a",
        password_investor="Invest!2026b",
        profile={"Name": "Ada Lovelace"},
    )
    new_login = 555_001
    run = subprocess.run(
        [
            str(NODE),
            str(mt5_sdk / "mt5_sdk_check.js"),
            mt5_sim.host,
            str(mt5_sim.port),
            str(MANAGER),
            MANAGER_PASSWORD,
            str(user.login),
            str(new_login),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])

    assert out["mutualCheck"] is True  # the SDK's own check of the server's cli_rand_answer
    assert out["user"]["Login"] == str(user.login)
    assert out["user"]["Name"] == "Ada Lovelace"
    assert _numbers_are_strings(out["user"])

    # Both balance calls went through; the one beyond the balance was refused (10019: null).
    assert set(out["deposit"]) == {"Ticket"}
    assert set(out["withdrawal"]) == {"Ticket"}
    assert out["tooMuch"] is None
    assert state.users[user.login].balance == Decimal("100.50")
    comments = [(d.comment, d.profit) for d in state.deals.values() if d.login == user.login]
    assert comments == [("sdk deposit", Decimal("150.50")), ("sdk-withdrawal", Decimal("-50.00"))]

    assert [u["Login"] for u in out["batch"]["answer"]] == [str(user.login)]
    assert (out["passwordOk"], out["passwordBad"]) == (True, False)

    assert out["created"]["Login"] == str(new_login)
    assert out["updated"]["Leverage"] == "50"
    assert state.users[new_login].leverage == 50
    assert state.users[new_login].profile["Email"] == "grace@example.com"

    # A manager with the wrong password gets no data (403: the SDK resolves to null).
    assert out["badManager"] is None
