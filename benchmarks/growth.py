"""``python -m benchmarks.growth [SCALE_DIR] [--base DIR]``: how each figure grew with the base.

Compares a scale run's figures (``benchmarks/results/10M``, written by ``python -m
benchmarks.run --contacts 10000000 --results benchmarks/results/10M``) with the newest figures
of the same benchmarks in ``benchmarks/results`` and writes ``SCALE_DIR/growth.md``.

For a duration the growth factor is (time at scale / time at base) ÷ (contacts at scale /
contacts at base): 1.0 is linear, below 1 better than linear. For a rate (``…/s``) it is the
inverse (the rate should hold), for memory the plain ratio (streamed work should stay flat).
The two runs were not taken under the same machine load; each file's time is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.harness import RESULTS_DIR


def _load(folder: Path) -> dict[tuple[str, str], tuple[dict, dict]]:
    """(module, benchmark) -> (result, file header) for every ``bench_*.json`` in ``folder``."""
    found: dict[tuple[str, str], tuple[dict, dict]] = {}
    for path in sorted(folder.glob("bench_*.json")):
        data = json.loads(path.read_text())
        for result in data["results"]:
            found[(data["module"], result["benchmark"])] = (result, data)
    return found


def growth_factor(*, unit: str, base: float, scaled: float, size_ratio: float) -> float | None:
    """1.0 = linear in the base size (see the module docstring); None when not comparable."""
    if base <= 0 or scaled <= 0 or size_ratio <= 0:
        return None
    if unit.endswith("/s"):
        return base / scaled  # a rate that holds gives 1.0
    if unit in {"MB", "GB"}:
        return scaled / base
    return (scaled / base) / size_ratio


def growth_table(scale_dir: Path, base_dir: Path = RESULTS_DIR) -> list[str]:
    scaled, base = _load(scale_dir), _load(base_dir)
    lines = [
        "# Growth from the base run to the scale run",
        "",
        "Growth factor: for a duration, (time at scale ÷ time at base) ÷ (contacts ratio), so "
        "1.0 is linear and below 1 is better than linear; for a rate, base rate ÷ scale rate "
        "(1.0: the rate holds); for peak memory, scale ÷ base (1.0: flat). The runs were taken "
        "at different times and loads: see `when`. Work of a fixed size (the incremental refresh "
        "of 10,000 contacts, one contact's real-time re-evaluation) should not grow at all: for "
        "it, read the plain ratio (1.0 = flat).",
        "",
        "| module | benchmark | base (contacts, when) | base value | scale (contacts, when) | "
        "scale value | plain ratio | growth factor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (module, name), (result, header) in sorted(scaled.items()):
        unit = result["unit"]
        scale_cell = f"{header['contacts']:,}, {header['when']}"
        if (module, name) not in base:
            lines.append(
                f"| {module} | {name} | — | — | {scale_cell} | {result['value']:,.3f} {unit} "
                "| — | no base figure |"
            )
            continue
        base_result, base_header = base[(module, name)]
        factor = growth_factor(
            unit=unit,
            base=base_result["value"],
            scaled=result["value"],
            size_ratio=header["contacts"] / base_header["contacts"],
        )
        lines.append(
            f"| {module} | {name} | {base_header['contacts']:,}, {base_header['when']} | "
            f"{base_result['value']:,.3f} {base_result['unit']} | {scale_cell} | "
            f"{result['value']:,.3f} {unit} | "
            + (
                f"{result['value'] / base_result['value']:.2f} | "
                if base_result["value"]
                else "— | "
            )
            + (f"{factor:.2f}" if factor is not None else "—")
            + " |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scale_dir", type=Path, nargs="?", default=RESULTS_DIR / "10M")
    parser.add_argument("--base", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if not any(args.scale_dir.glob("bench_*.json")):
        parser.error(f"no bench_*.json in {args.scale_dir}: run the scale run first")
    out = args.scale_dir / "growth.md"
    out.write_text("\n".join(growth_table(args.scale_dir, args.base)) + "\n")
    print(f"Growth: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
