"""FXCRM_API_WORKERS: how many processes `fxcrm api` runs, and what `make dev` picks."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from fxcrm import cli
from fxcrm.core.config import Settings
from fxcrm.dev import dev_api_workers, dev_environment


def test_one_worker_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FXCRM_API_WORKERS", raising=False)
    assert Settings(env="test").api_workers == 1
    monkeypatch.setenv("FXCRM_API_WORKERS", "3")
    assert Settings(env="test").api_workers == 3


@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_a_worker_count_that_cannot_run_is_refused(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("FXCRM_API_WORKERS", bad)
    with pytest.raises(ValidationError):
        Settings(env="test")


def test_fxcrm_api_runs_the_configured_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append((app, kwargs)))
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(env="test", api_workers=4))
    cli.api()
    [(app, kwargs)] = calls
    # Several workers need an import string and a factory: each process builds its own app.
    assert (app, kwargs["factory"], kwargs["workers"]) == ("fxcrm.cli:api_app", True, 4)
    module, _, name = app.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is cli.api_app


def test_the_worker_factory_builds_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(env="test", log_json=True))
    try:
        app = cli.api_app()
        # What was loaded at start is kept out of the garbage collector's full passes.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
    assert isinstance(app, FastAPI)
    assert "/portal/me/balances" in app.openapi()["paths"]


def test_make_dev_uses_two_workers_where_there_are_two_cores() -> None:
    assert dev_api_workers(cpus=1) == 1
    assert dev_api_workers(cpus=2) == 2
    assert dev_api_workers(cpus=16) == 2
    assert dev_api_workers(cpus=None) in (1, 2)


def test_make_dev_keeps_a_worker_count_that_was_set() -> None:
    assert dev_environment({"FXCRM_API_WORKERS": "1"})["FXCRM_API_WORKERS"] == "1"
    env = dev_environment({"PATH": "/bin"})
    assert env["FXCRM_API_WORKERS"] == str(dev_api_workers())
    assert (env["FXCRM_ENV"], env["PATH"]) == ("dev", "/bin")
