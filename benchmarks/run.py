"""``python -m benchmarks.run [--contacts N] [--events-per-contact M] [--only NAME ...]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks.harness import Context, postgres_django, write_module_results, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events-per-contact", type=float, default=10.0)
    parser.add_argument("--only", nargs="*", default=None,
                        help="benchmark modules to run, e.g. seed segments (default: all)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the PostgreSQL cluster in DIR and reuse it (and its seeded "
                             "population) on the next run; for working on one benchmark")
    args = parser.parse_args(argv)
    package = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(package)]) if m.name.startswith("bench_"))
    if args.only:
        wanted = {f"bench_{n.removeprefix('bench_')}" for n in args.only}
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have {', '.join(names)}")
        names = [n for n in names if n in wanted]
    with postgres_django(keep=args.keep) as url:
        ctx = Context(database_url=url, contacts=args.contacts, events_per_contact=args.events_per_contact)
        # bench_seed loads the population every other benchmark works on; it always runs first.
        ordered = ["bench_seed"] + [n for n in names if n != "bench_seed"]
        for name in ordered:
            print(f"== {name}", flush=True)
            before = len(ctx.results)
            importlib.import_module(f"benchmarks.{name}").run(ctx)
            if len(ctx.results) > before:  # a reused (--keep) seed measures nothing
                write_module_results(ctx, name, ctx.results[before:])
        write_report()
    print("Report: benchmarks/results/latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
