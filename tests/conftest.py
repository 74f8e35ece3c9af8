"""Shared fixtures.

Tests that need the labelled corpus or the real call log read them from
the shared data folder, ``$CALLSURE_SHARED`` (default ``../shared`` beside
the repository). When it is absent those tests are skipped with a message
saying what to fetch.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Ray reads this variable when it is imported, and callsure.actors sets it.
# A test module that imports ray first would otherwise start a local Ray on
# the machine's external address, which start_ray then stops.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CALLSURE_SHARED", REPO.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """Return a path under the shared data folder, skipping the test if missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path} is missing: set CALLSURE_SHARED to a folder holding "
            "corpus/amd, corpus/amd-cases and data/anonymous-bank"
        )
    return path


@pytest.fixture(scope="session")
def amd_corpus() -> Path:
    return shared_path("corpus", "amd")


@pytest.fixture(scope="session")
def amd_cases() -> Path:
    return shared_path("corpus", "amd-cases")


@pytest.fixture(scope="session")
def bank_log() -> Path:
    return shared_path("data", "anonymous-bank", "calls-1999-02-01-to-21.tsv")
