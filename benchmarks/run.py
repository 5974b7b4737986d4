"""``python -m benchmarks.run [--contacts N] [--events-per-contact M] [--only NAME ...]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path

from benchmarks.harness import (
    MIN_FREE_BYTES,
    RESULTS_DIR,
    Context,
    Result,
    postgres_django,
    write_module_results,
    write_report,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events-per-contact", type=float, default=10.0)
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="benchmark modules to run, e.g. seed segments (default: all)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the PostgreSQL cluster in DIR and reuse it (and its seeded "
        "population) on the next run; for working on one benchmark",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        metavar="DIR",
        help="where the figures go (default benchmarks/results; the 10M scale "
        "run writes to benchmarks/results/10M, see benchmarks/growth.py)",
    )
    args = parser.parse_args(argv)
    package = Path(__file__).resolve().parent
    names = sorted(
        m.name for m in pkgutil.iter_modules([str(package)]) if m.name.startswith("bench_")
    )
    if args.only:
        wanted = {f"bench_{n.removeprefix('bench_')}" for n in args.only}
        unknown = wanted - set(names)
        if unknown:
            parser.error(
                f"unknown benchmark(s): {', '.join(sorted(unknown))}; have {', '.join(names)}"
            )
        names = [n for n in names if n in wanted]
    with postgres_django(keep=args.keep) as (url, base):
        ctx = Context(
            database_url=url,
            contacts=args.contacts,
            events_per_contact=args.events_per_contact,
            data_dir=base,
        )
        # bench_seed loads the population every other benchmark works on; it always runs first.
        ordered = ["bench_seed"] + [n for n in names if n != "bench_seed"]
        for name in ordered:
            free = ctx.free_bytes()
            print(
                f"== {name}" + (f" ({free / 1024**3:.1f} GB free)" if free is not None else ""),
                flush=True,
            )
            before = len(ctx.results)
            if free is not None and free < MIN_FREE_BYTES and name != "bench_seed":
                ctx.record(
                    Result(
                        benchmark=f"{name}: not run",
                        value=free / 1024**3,
                        unit="GB free",
                        comparison=f"fewer than {MIN_FREE_BYTES / 1024**3:.0f} GB free beside the "
                        "cluster (BENCH_MIN_FREE_GB): the module would fill the disk",
                    )
                )
            else:
                try:
                    importlib.import_module(f"benchmarks.{name}").run(ctx)
                except Exception as exc:  # noqa: BLE001 - a long run goes on with the next module
                    traceback.print_exc()
                    ctx.record(
                        Result(
                            benchmark=f"{name}: failed",
                            value=0.0,
                            unit="",
                            passed=False,
                            comparison=f"{type(exc).__name__}: {exc}"[:1000],
                        )
                    )
                    _reset_connection()
            if len(ctx.results) > before:  # a reused (--keep) seed measures nothing
                write_module_results(ctx, name, ctx.results[before:], args.results)
        write_report(args.results)
    print(f"Report: {args.results / 'latest.md'}")
    return 0


def _reset_connection() -> None:
    """After a module failed mid-transaction, the next one starts on a clean connection."""
    from django.db import connections

    connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
