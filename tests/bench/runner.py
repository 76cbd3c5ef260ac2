"""Running benchmark variants in fresh processes, interleaved (A B C A B C ...), and summarizing them.

A variant is a function in a section module, called in a child process as
``python -m tests.bench.runner SECTION VARIANT ARG...``; it returns a dict of figures (at least ``wall``)
that the child prints as JSON. Each child measures its own wall and CPU time and its peak resident memory
above the resident memory it had after its imports (the "post-import baseline").
"""

from __future__ import annotations

import importlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Section:
    """A section's output: table lines to print, and its fields of the final BENCH line."""

    title: str
    lines: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def _status_mb(key: str) -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return None


def current_rss_mb() -> float:
    """Resident memory now (the post-import baseline, taken after warming up)."""
    now = _status_mb("VmRSS:")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark to the current RSS, so imports' transient peaks do not count."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_mb() -> float:
    """The process's peak resident memory since :func:`reset_peak`."""
    peak = _status_mb("VmHWM:")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(work: Callable[[], Any], baseline_mb: float) -> dict[str, float]:
    """Wall and CPU seconds of ``work`` and the process's peak memory above ``baseline_mb``.

    The peak mark is reset just before ``work``; inputs loaded after the baseline (the body) count.
    """
    reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "peak_mb": peak_rss_mb() - baseline_mb,
    }


def _command(section: str, variant: str, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "tests.bench.runner", section, variant, *args]


def _figures(section: str, variant: str, returncode: int, stdout: str, stderr: str) -> dict[str, float]:
    if returncode != 0:
        raise RuntimeError(f"{section}.{variant} failed:\n{stderr[-4000:]}")
    figures: dict[str, float] = json.loads(stdout.strip().splitlines()[-1])
    return figures


def run_child(section: str, variant: str, args: Sequence[str]) -> dict[str, float]:
    """One variant, once, in a fresh interpreter; adds ``process_wall``, the child's life from start to exit."""
    start = time.perf_counter()
    done = subprocess.run(_command(section, variant, args), check=False, capture_output=True, text=True)
    figures = _figures(section, variant, done.returncode, done.stdout, done.stderr)
    return figures | {"process_wall": time.perf_counter() - start}


def run_children_together(section: str, variants: Sequence[str], args: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each variant once, all at the same time, each in a fresh interpreter of its own (for waits, not CPU work)."""
    children = {
        variant: subprocess.Popen(
            _command(section, variant, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for variant in variants
    }
    outputs = {variant: child.communicate() for variant, child in children.items()}
    return {
        variant: _figures(section, variant, children[variant].returncode, *outputs[variant]) for variant in variants
    }


def interleaved(
    section: str,
    variants: Sequence[str],
    args: Sequence[str],
    rounds: int,
    progress: str = "",
    together: bool = False,
) -> dict[str, list[dict[str, float]]]:
    """Every variant once per round, in the same order each round, for ``rounds`` rounds.

    With ``together``, a round's variants run at the same time in separate processes (for latency measurements
    that mostly wait, so that a round takes the time of one run).
    """
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    for number in range(rounds):
        if together:
            print(f"  {progress}round {number + 1}/{rounds}: {', '.join(variants)} together", file=sys.stderr)
            for variant, figures in run_children_together(section, variants, args).items():
                runs[variant].append(figures)
            continue
        for variant in variants:
            print(f"  {progress}round {number + 1}/{rounds}: {variant}", file=sys.stderr, flush=True)
            runs[variant].append(run_child(section, variant, args))
    return runs


def median(values: Sequence[float]) -> float:
    """The median."""
    return float(statistics.median(values))


def paired_ratio(numerator: Sequence[dict[str, float]], denominator: Sequence[dict[str, float]], key: str) -> float:
    """The median over rounds of ``numerator[key] / denominator[key]``, pairing runs of the same round."""
    return median([a[key] / b[key] for a, b in zip(numerator, denominator, strict=True)])


def main() -> None:
    """Child entry point: ``SECTION VARIANT ARG...``."""
    section, variant, *args = sys.argv[1:]
    module = importlib.import_module(f"tests.bench.{section}")
    figures = module.VARIANTS[variant](*args)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
