from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dagster_iwatch

ROOT = Path(__file__).resolve().parents[1]


def test_public_names_resolve() -> None:
    for name in dagster_iwatch.__all__:
        assert getattr(dagster_iwatch, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = dagster_iwatch.nope


def test_package_ships_type_information() -> None:
    assert (Path(dagster_iwatch.__file__).parent / "py.typed").exists()


@pytest.mark.parametrize("module", ["dagster_iwatch.client", "dagster_iwatch.local", "dagster_iwatch.errors"])
def test_client_and_local_server_do_not_import_dagster(module: str) -> None:
    code = f"import sys, {module}; sys.exit('dagster' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_version_is_defined_once() -> None:
    from importlib.metadata import version

    assert version("dagster-iwatch") == dagster_iwatch.__version__
