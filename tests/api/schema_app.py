"""The API in this process, on a seeded database of its own, with a Temporal that has no worker.

For tests that call the ASGI app directly (schemathesis, bad-input tests): no dev server, no
simulators, no sockets. SQLite, or PostgreSQL beside TEST_DATABASE_URL's database when it is set.
Workflows start and take signals; nothing runs them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.api.history.v1 import History
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from fxcrm.api.main import create_app
from fxcrm.core.config import Settings
from fxcrm.core.db import create_engine, session_factory
from fxcrm.core.migrate import upgrade
from fxcrm.seed import DEMO_BRAND, DEMO_PASSWORD_SUFFIX, seed_demo
from tests.conftest import test_database_url
from tests.db import fresh_database
from tests.e2e.portal import PASSWORD, registration


@dataclass
class FakeTemporal:
    """What the API sees of a Temporal cluster whose workers are all away."""

    started: dict[str, Any] = field(default_factory=dict)  # workflow id -> its input
    signals: list[tuple[str, str]] = field(default_factory=list)

    async def start_workflow(
        self,
        workflow: Any,
        arg: Any = None,
        *,
        id: str,
        id_conflict_policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
        **_: Any,
    ) -> FakeHandle:
        if id in self.started and id_conflict_policy != WorkflowIDConflictPolicy.USE_EXISTING:
            raise WorkflowAlreadyStartedError(id, str(workflow))
        self.started.setdefault(id, arg)
        return FakeHandle(self, id)

    async def execute_workflow(self, workflow: Any, arg: Any = None, **_: Any) -> Any:
        # The only workflow the API waits for changes a trading account: the platform knows none.
        raise WorkflowFailureError(
            cause=ApplicationError("no such account", type="Platform.not_found")
        )

    def get_workflow_handle(self, workflow_id: str, **_: Any) -> FakeHandle:
        return FakeHandle(self, workflow_id)


@dataclass
class FakeHandle:
    temporal: FakeTemporal
    id: str

    def _input(self) -> Any:
        if self.id not in self.temporal.started:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        return self.temporal.started[self.id]

    async def signal(self, name: str, arg: Any = None, **_: Any) -> None:
        self._input()
        self.temporal.signals.append((self.id, name))

    async def query(self, name: str, *, result_type: type[BaseModel], **_: Any) -> Any:
        # A workflow that has not run a task yet: its state is its input.
        return result_type.model_validate(self._input().model_dump())

    async def fetch_history(self, **_: Any) -> WorkflowHistory:
        self._input()
        return WorkflowHistory(self.id, list(History().events))


@dataclass
class InProcessApi:
    app: Any
    settings: Settings
    temporal: FakeTemporal
    tokens: dict[str, str]  # admin | trader | ib -> bearer token
    trader_id: str


def run_sync(make: Callable[[], Awaitable[Any]]) -> Any:
    """Runs a coroutine to completion on a loop of its own (the caller may be inside one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()  # type: ignore[arg-type]


async def _own_postgres(base: str) -> str:
    """A database of its own beside TEST_DATABASE_URL's, migrated and empty: the requests these
    tests make must not land in the database the other tests share."""
    url = make_url(base)
    name = f"{url.database}_inprocess"
    server = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with server.connect() as conn:
        known = await conn.scalar(
            text("select 1 from pg_database where datname = :name"), {"name": name}
        )
        if not known:
            await conn.execute(text(f'create database "{name}"'))
    await server.dispose()
    own = url.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(own)
    async with engine.begin() as conn:
        await conn.execute(text("drop schema if exists public cascade"))
        await conn.execute(text("create schema public"))
    await engine.dispose()
    await asyncio.to_thread(upgrade, own)
    return own


async def _seeded(tmp_dir: Path) -> str:
    # PostgreSQL when the suite runs on it (CI), else a SQLite file.
    postgres = test_database_url()
    url = await _own_postgres(postgres) if postgres else await fresh_database("sqlite", tmp_dir)
    engine = create_engine(url)
    await seed_demo(session_factory(engine), mt5_url="https://127.0.0.1:9")
    await engine.dispose()
    return url


def build(tmp_dir: Path, client: Callable[[Any], Any]) -> InProcessApi:
    """A seeded database, the app on it, and tokens of an admin, a trader and an IB.

    `client(app)` gives a requests-like client for the app (schemathesis's ASGI client).
    """
    url = run_sync(lambda: _seeded(tmp_dir))
    settings = Settings(
        env="test",
        database_url=url,
        task_queue=f"inproc-{uuid.uuid4().hex[:8]}",
        # Thousands of requests from one address: the limits have tests of their own.
        rate_login_per_minute=0,
        rate_register_per_hour=0,
        rate_writes_per_minute=0,
        rate_account_writes_per_minute=0,
    )
    temporal = FakeTemporal()

    async def temporal_client() -> Any:
        return temporal

    app = create_app(settings, temporal_client=temporal_client)
    with client(app) as http:
        body = registration()
        registered = http.post(f"/portal/{DEMO_BRAND}/register", json=body)
        assert registered.status_code == 201, registered.text
        logins = {
            "admin": ("/auth/token", "admin@demo.fxcrm.dev", f"admin{DEMO_PASSWORD_SUFFIX}"),
            "trader": (f"/portal/{DEMO_BRAND}/token", body["email"], PASSWORD),
            "ib": (
                f"/partner/{DEMO_BRAND}/token",
                "ib1@demo.fxcrm.dev",
                f"ib1{DEMO_PASSWORD_SUFFIX}",
            ),
        }
        tokens = {}
        for who, (path, username, password) in logins.items():
            answer = http.post(path, data={"username": username, "password": password})
            assert answer.status_code == 200, answer.text
            tokens[who] = answer.json()["access_token"]
    return InProcessApi(app, settings, temporal, tokens, registered.json()["trader_id"])
