"""The README's Python examples run as written (all but the one that needs a live server)."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

import dagster_iwatch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", [b for b in BLOCKS if "with IWatchClient(" not in b])
def test_readme_example_runs(code: str) -> None:
    namespace: dict[str, object] = {
        "dg": dg,
        **{name: getattr(dagster_iwatch, name) for name in dagster_iwatch.__all__},
    }
    exec(compile(code, str(README), "exec"), namespace)
    defs = namespace.get("defs")
    if isinstance(defs, dg.Definitions):
        dg.Definitions.validate_loadable(defs)
