"""Schemathesis over the whole OpenAPI schema: no input makes a 500, and every answer is documented.

Runs in process against the ASGI app (tests/api/inprocess.py): a seeded SQLite database of its own
that the generated requests may change, and a Temporal without workers. Each operation is called
as an admin, a trader, an IB and with no token. Bounded and deterministic: a fixed seed and a few
examples per operation, so the run takes a minute or two.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import status_code_conformance

from fxcrm.api.main import create_app
from fxcrm.core.config import Settings
from tests.api.inprocess import InProcessApi

MAX_EXAMPLES = 6

CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "seed": 20260904,
        "generation": {"mode": "all", "deterministic": True, "max-examples": MAX_EXAMPLES},
        "phases": {"stateful": {"enabled": False}},
    }
)


@pytest.fixture
def api(inprocess_api: InProcessApi) -> InProcessApi:
    return inprocess_api


def _schema() -> schemathesis.BaseSchema:
    """Loaded when the module is: the schema needs no database (the calls go to the `api` app)."""
    app = create_app(Settings(env="test"))
    loaded = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
    loaded.app = app  # in process, through schemathesis's ASGI transport
    return loaded


schema = _schema()


HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def call(case: schemathesis.Case, api: InProcessApi, who: str | None) -> None:
    headers = {"Authorization": f"Bearer {api.tokens[who]}"} if who else {}
    case.call_and_validate(
        app=api.app,
        headers=headers,
        checks=[schemathesis.checks.not_a_server_error, status_code_conformance],
    )


# One test per identity: schemathesis's lazy schema takes no parametrized fixture.
@schema.parametrize()
@HYPOTHESIS
def test_as_admin(case: schemathesis.Case, api: InProcessApi) -> None:
    call(case, api, "admin")


@schema.parametrize()
@HYPOTHESIS
def test_as_trader(case: schemathesis.Case, api: InProcessApi) -> None:
    call(case, api, "trader")


@schema.parametrize()
@HYPOTHESIS
def test_as_ib(case: schemathesis.Case, api: InProcessApi) -> None:
    call(case, api, "ib")


@schema.parametrize()
@HYPOTHESIS
def test_without_token(case: schemathesis.Case, api: InProcessApi) -> None:
    call(case, api, None)
