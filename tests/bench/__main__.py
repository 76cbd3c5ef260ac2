"""``python -m tests.bench [--sizes N ...] [--rounds K]``: every section, then one BENCH line.

Sections are functions returning a :class:`tests.bench.runner.Section`; each adds its table and its
fields of the BENCH line. Only fields measured in this run are printed.
"""

from __future__ import annotations

import argparse
import time

from tests.bench import ingest


def main(argv: list[str] | None = None) -> None:
    """Run the sections and print their tables and the BENCH line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="ingest sizes, in rows")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison (at least 3)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sections = [ingest.run(sorted(args.sizes), max(args.rounds, 3))]
    fields: dict[str, str] = {}
    for section in sections:
        print(f"## {section.title}")
        print("\n".join(section.lines))
        fields |= section.fields
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    print("BENCH " + " ".join(f"{key}={value}" for key, value in fields.items()))


if __name__ == "__main__":
    main()
