"""Schemathesis over the whole OpenAPI schema: no input makes a 500, and every answer is documented.

Runs in process against the ASGI app (tests/api/schema_app.py): a seeded database of its own
that the generated requests may change, and a Temporal without workers. Every operation is called
as an admin, a trader, an IB and with no token: in depth (examples, boundary coverage, valid and
invalid data) by the caller it is meant for, lightly (a few fuzzed requests: it must refuse them
with a documented 401 or 403, not crash) by the others. Deterministic: a fixed seed, bounded
examples, so the run takes a minute or two.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import status_code_conformance

from fxcrm.api.main import create_app
from fxcrm.core.config import Settings
from tests.api.schema_app import InProcessApi

SEED = 20260904
DEEP_EXAMPLES = 6
LIGHT_EXAMPLES = 2

# Whose operations are whose, by path: anything a caller is not meant for is called lightly.
OWN = {
    "admin": r"^/(backoffice|audit)/",
    "trader": r"^/portal/me",
    "ib": r"^/partner/(me|downline|clients|commissions|periods|settlements|payouts)",
    # Public operations: logins, registration, referral clicks, webhooks, health.
    None: r"^/(auth/token|health|webhooks/|portal/\{brand_code\}/|partner/\{brand_code\}/)",
}


def _config(max_examples: int, deep: bool) -> schemathesis.config.SchemathesisConfig:
    return schemathesis.config.SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "deterministic": True, "max-examples": max_examples},
            "phases": {
                "examples": {"enabled": deep},
                "coverage": {"enabled": deep},
                "stateful": {"enabled": False},
            },
        }
    )


# The schema needs no database: it is read once, with the module (the calls go to `inprocess_api`).
SCHEMA_APP = create_app(Settings(env="test"))


def _schema(deep: bool) -> schemathesis.BaseSchema:
    config = _config(DEEP_EXAMPLES if deep else LIGHT_EXAMPLES, deep)
    loaded = schemathesis.openapi.from_dict(copy.deepcopy(SCHEMA_APP.openapi()), config=config)
    loaded.app = SCHEMA_APP  # in process, through schemathesis's ASGI transport
    return loaded


DEEP, LIGHT = _schema(deep=True), _schema(deep=False)


def call(case: schemathesis.Case, api: InProcessApi, who: str | None) -> None:
    headers = {"Authorization": f"Bearer {api.tokens[who]}"} if who else {}
    case.call_and_validate(
        app=api.app,
        headers=headers,
        checks=[schemathesis.checks.not_a_server_error, status_code_conformance],
    )


def _test(who: str | None, schema: schemathesis.BaseSchema, examples: int) -> Callable[..., Any]:
    # One test function per caller and depth: schemathesis parametrizes each over the operations.
    @schema.parametrize()
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,  # nothing carried from run to run: every run makes the same requests
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def test(case: schemathesis.Case, inprocess_api: InProcessApi) -> None:
        call(case, inprocess_api, who)

    return test


def _own(who: str | None) -> Callable[..., Any]:
    return _test(who, DEEP.include(path_regex=OWN[who]), DEEP_EXAMPLES)


def _others(who: str | None) -> Callable[..., Any]:
    return _test(who, LIGHT.exclude(path_regex=OWN[who]), LIGHT_EXAMPLES)


test_admin_operations_as_admin = _own("admin")
test_other_operations_as_admin = _others("admin")
test_portal_as_trader = _own("trader")
test_other_operations_as_trader = _others("trader")
test_partner_api_as_ib = _own("ib")
test_other_operations_as_ib = _others("ib")
test_public_operations_without_token = _own(None)
test_other_operations_without_token = _others(None)
