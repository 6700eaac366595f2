"""The in-process API (tests/api/schema_app.py), shared by the tests that need no Temporal worker."""

from __future__ import annotations

import pytest
from schemathesis.python import asgi

from tests.api.schema_app import InProcessApi, build


@pytest.fixture(scope="session")
def inprocess_api(tmp_path_factory: pytest.TempPathFactory) -> InProcessApi:
    return build(tmp_path_factory.mktemp("inprocess-api"), asgi.get_client)
