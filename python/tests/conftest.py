"""Shared set-up for the Python package's tests (run by scripts/test with /usr/bin/python3).

The package is imported from the build tree (PYTHONPATH=build/python); RIVUS_BIN names the
`rivus` binary for the tests that inspect a run from outside.
"""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def rivus_bin() -> str:
    path = os.path.abspath(os.environ.get("RIVUS_BIN", str(ROOT / "build" / "bin" / "rivus")))
    assert os.access(path, os.X_OK), f"no rivus binary at {path} (set RIVUS_BIN)"
    return path
