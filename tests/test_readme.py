"""Every Python block of the README runs as written, each on its own (copyable alone), against the local server."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from dagster_iwatch.local import LocalServer

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_each_readme_block_runs_alone(
    code: str, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IWATCH_URL", server.url)
    monkeypatch.setenv("IWATCH_API_KEY", server.user_api_key)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), namespace)
    defs = namespace.get("defs")
    if defs is not None:
        assert isinstance(defs, dg.Definitions)
        dg.Definitions.validate_loadable(defs)


def test_the_readme_teaches_definitions_a_dashboard_and_the_client() -> None:
    assert len(BLOCKS) >= 6
    assert any("dg.Definitions(" in b for b in BLOCKS)
    assert any("build_iwatch_dashboard_asset(" in b for b in BLOCKS)
    assert any("with IWatchClient(" in b for b in BLOCKS)


def test_the_install_lines_resolve(tmp_path: Path) -> None:
    block = next(b for b in re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL) if "pip install" in b)
    root = str(README.parent)
    for line in block.strip().splitlines():
        command = shlex.split(line.split("#")[0])
        assert command[:2] == ["pip", "install"]
        target = command[2].replace("/path/to/dagster-iwatch", root)
        # The same install, resolved (not applied) by the uv the Makefile installs beside pytest.
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "uv"),
                "pip",
                "install",
                "--dry-run",
                "--python",
                sys.executable,
                target,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
