"""The scale run's growth report (benchmarks/growth.py) reads two result folders and states,
per benchmark, how the figure grew relative to the base size."""

import json

from benchmarks.growth import growth_factor, growth_table


def _write(folder, module, contacts, results):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.json").write_text(
        json.dumps(
            {
                "module": module,
                "when": "2026-12-05T12:00:00Z",
                "contacts": contacts,
                "events_per_contact": 10.0,
                "results": results,
            }
        )
    )


def test_growth_factor_is_one_for_linear_time_a_held_rate_and_flat_memory():
    assert growth_factor(unit="s", base=10.0, scaled=100.0, size_ratio=10) == 1.0
    assert growth_factor(unit="s", base=10.0, scaled=250.0, size_ratio=10) == 2.5
    assert growth_factor(unit="emails/s", base=800.0, scaled=400.0, size_ratio=10) == 2.0
    assert growth_factor(unit="MB", base=600.0, scaled=600.0, size_ratio=10) == 1.0
    assert growth_factor(unit="s", base=0.0, scaled=1.0, size_ratio=10) is None


def test_growth_table_pairs_benchmarks_by_module_and_name(tmp_path):
    base, scale = tmp_path / "base", tmp_path / "10M"
    _write(base, "bench_seed", 1_000_000, [{"benchmark": "seed", "value": 300.0, "unit": "s"}])
    _write(
        scale,
        "bench_seed",
        10_000_000,
        [
            {"benchmark": "seed", "value": 4_500.0, "unit": "s"},
            {"benchmark": "new at scale", "value": 1.0, "unit": "s"},
        ],
    )
    rows = {
        line.split(" | ")[1]: line
        for line in growth_table(scale, base)
        if line.startswith("| bench_")
    }
    assert rows["seed"].endswith("| 15.00 | 1.50 |")
    assert "1,000,000" in rows["seed"] and "10,000,000" in rows["seed"]
    assert rows["new at scale"].endswith("| no base figure |")
