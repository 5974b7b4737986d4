"""Benchmark harness: a throwaway PostgreSQL, Django on it, a seeded population, a report.

``make bench`` runs ``python -m benchmarks.run``: it starts PostgreSQL (as the ``postgres`` user
when run as root), migrates, loads ``--contacts`` contacts and ``--events-per-contact`` events
with ``seed_demo`` once, then runs every ``benchmarks/bench_*.py`` module's ``run(ctx)``.
Results are printed and written to ``benchmarks/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# A module does not start with less free space than this where the cluster lives: a
# PostgreSQL that fills its disk stops mid-run and loses the whole scale run.
MIN_FREE_BYTES = int(os.environ.get("BENCH_MIN_FREE_GB", "6")) * 1024**3


@dataclass
class Result:
    benchmark: str
    value: float
    unit: str
    target: str = ""
    comparison: str = ""  # e.g. "raw COPY of the same data: 41.2 s"
    passed: bool | None = None
    details: dict = field(default_factory=dict)


@dataclass
class Context:
    """What a benchmark module receives."""

    database_url: str
    contacts: int
    events_per_contact: float
    results: list[Result] = field(default_factory=list)
    data_dir: Path | None = None  # where the PostgreSQL cluster lives (free-space checks)

    def free_bytes(self) -> int | None:
        import shutil

        return shutil.disk_usage(self.data_dir).free if self.data_dir else None

    def record(self, result: Result) -> Result:
        self.results.append(result)
        verdict = "" if result.passed is None else (" PASS" if result.passed else " MISS")
        print(
            f"  {result.benchmark}: {result.value:,.3f} {result.unit}"
            f"{f' (target {result.target})' if result.target else ''}{verdict}"
            f"{f' — {result.comparison}' if result.comparison else ''}",
            flush=True,
        )
        return result


@contextmanager
def timed() -> Iterator[dict]:
    """``with timed() as t: ...`` then ``t["seconds"]``."""
    box: dict = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


@contextmanager
def postgres_django(keep: Path | None = None) -> Iterator[tuple[str, Path]]:
    """Start PostgreSQL, point Django at it, migrate; yield the DATABASE_URL and the folder
    the cluster lives in.

    With ``keep`` (``--keep DIR``), the cluster is kept in DIR and reused by the next run, so
    a seeded population is loaded once while a benchmark is being worked on."""
    from tests.services import PostgresServer

    server = PostgresServer.start(keep=keep)
    try:
        os.environ["DATABASE_URL"] = server.url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        os.environ["DEBUG"] = "0"
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        # Pages rendered by the benchmarks (results page, reports) name their static files
        # through the production manifest storage: it must have been collected.
        call_command("collectstatic", interactive=False, verbosity=0)
        yield server.url, server.base
    finally:
        from django.db import connections

        connections.close_all()
        server.stop()


def write_module_results(
    ctx: Context, module: str, results: list[Result], results_dir: Path = RESULTS_DIR
) -> None:
    """Keep each module's newest results in ``results/<module>.json`` (runs of one module
    do not erase the others' figures)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "module": module,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "contacts": ctx.contacts,
        "events_per_contact": ctx.events_per_contact,
        "results": [asdict(r) for r in results],
    }
    (results_dir / f"{module}.json").write_text(json.dumps(payload, indent=2) + "\n")


def write_report(results_dir: Path = RESULTS_DIR) -> None:
    """Summarise every module's newest results into ``results/latest.md``."""
    lines = [
        "# Benchmark results (newest run of each module)",
        "",
        "| module | when | contacts | benchmark | value | target | comparison |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted(results_dir.glob("bench_*.json")):
        data = json.loads(path.read_text())
        for r in data["results"]:
            verdict = "" if r.get("passed") is None else (" ✓" if r["passed"] else " ✗")
            lines.append(
                f"| {data['module']} | {data['when']} | {data['contacts']:,} | {r['benchmark']} | "
                f"{r['value']:,.3f} {r['unit']}{verdict} | {r['target']} | {r['comparison']} |"
            )
    (results_dir / "latest.md").write_text("\n".join(lines) + "\n")
