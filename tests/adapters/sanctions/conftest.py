"""Paths to the committed sanctions fixtures and to the full OFAC list in ../shared (CI layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sanctions"
OFAC_EXTRACT = FIXTURES / "ofac-sdn-extract"
OFAC_XML = FIXTURES / "sdn.xml"
UN_XML = FIXTURES / "un-consolidated.xml"
FULL_OFAC = Path(__file__).resolve().parents[3] / "../shared/data/sanctions/ofac-sdn-2022-01"


@pytest.fixture
def full_ofac_dir() -> Path:
    if not (FULL_OFAC / "sdn.csv").exists():
        pytest.skip(f"shared sanctions data not present at {FULL_OFAC}")
    return FULL_OFAC
