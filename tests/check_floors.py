"""Check that each direct dependency is installed at exactly the lower bound pyproject.toml gives it.

`make test-lowest` runs this after `uv pip install --resolution lowest-direct`: a bound that no release meets
exactly (a version that was never published, or one the resolver had to skip) would otherwise go untested,
and so would a bound that another dependency's own requirements lift above it.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def floors(extras: tuple[str, ...] = ("dev",)) -> dict[str, Version]:
    """The lower bound (``>=``) of each direct dependency and of the given extras that apply here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    found: dict[str, Version] = {}
    environment = {**default_environment(), "extra": ""}
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        for spec in requirement.specifier:
            if spec.operator == ">=":
                found[requirement.name] = max(found.get(requirement.name, Version(spec.version)), Version(spec.version))
    return found


def main() -> int:
    """Print each floor beside the installed version; exit 1 if any differ."""
    wrong = 0
    for name, floor in sorted(floors().items()):
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            installed = None
        ok = installed == floor
        wrong += not ok
        print(f"{'ok ' if ok else 'BAD'} {name}: floor {floor}, installed {installed}")
    if wrong:
        print(
            f"{wrong} lower bound(s) in pyproject.toml are not what --resolution lowest-direct installs",
            file=sys.stderr,
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
