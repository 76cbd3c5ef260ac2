"""The README's Python examples run as written, in order (all but the one that needs a live server)."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

import dagster_iwatch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_examples_run() -> None:
    runnable = [b for b in BLOCKS if "with IWatchClient(" not in b]
    assert len(runnable) >= 4
    namespace: dict[str, object] = {
        "dg": dg,
        **{name: getattr(dagster_iwatch, name) for name in dagster_iwatch.__all__},
    }
    for code in runnable:
        exec(compile(code, str(README), "exec"), namespace)
    defs = namespace["defs"]
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)
    dashboard = namespace["chain_overview"]
    assert isinstance(dashboard, dg.AssetsDefinition)
    assert {dg.AssetKey(["onchain", "daily_volume"]), dg.AssetKey(["onchain", "transfers"])} <= set(
        dashboard.asset_deps[dashboard.key]
    )
