"""bench.compare on synthetic runs: the per-figure Markdown tables of several runs' results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.compare import load, numbers, tables
from tests.processes import ROOT


def _run(root: Path, label: str, stamp: str, pipeline: float, ratio: float) -> None:
    path = root / label / stamp
    path.mkdir(parents=True)
    document = {
        "when": stamp, "quick": False, "seconds": 600.0, "pipeline_orders_per_s": pipeline,
        "goals_met": {"pipeline_orders_per_s": False},
        "scenarios": {"peers": {"ratios": {"orders_per_s": ratio}, "skipped_flag": True}},
    }  # fmt: skip
    (path / "results.json").write_text(json.dumps(document))


def test_numbers_flattens_numeric_leaves_and_leaves_out_run_metadata():
    figures = numbers({"seconds": 3, "a": {"b": 1, "c": True, "d": "x", "e": [1]}, "f": 2.5})
    assert figures == {"a.b": 1.0, "f": 2.5}


def test_a_table_per_figure_with_each_run_and_median_and_spread_per_side(tmp_path):
    for i, (pipeline, ratio) in enumerate([(400, 3.0), (500, 3.5), (600, 2.5)]):
        _run(tmp_path, "before", f"2026120{i}-000000", pipeline, ratio)
    for i, (pipeline, ratio) in enumerate([(900, 5.0), (1000, 6.0), (1300, 5.5)]):
        _run(tmp_path, "after", f"2026120{i}-010000", pipeline, ratio)
    runs = load([tmp_path])
    assert [label for label, _, _ in runs] == ["before", "after"] * 3  # in the order they ran
    out = tables(runs)
    assert out.index("| before | 3 |") < out.index("| after | 3 |")
    assert "### pipeline_orders_per_s" in out
    assert "### scenarios.peers.ratios.orders_per_s" in out
    assert "seconds" not in out
    assert "goals_met" not in out
    block = out.split("### pipeline_orders_per_s")[1].split("###")[0]
    assert "| before | 3 | 500 | 400 | 600 | 200 | 40% |" in block
    assert "| after | 3 | 1,000 | 900 | 1,300 | 400 | 40% |" in block
    ratio = out.split("### scenarios.peers.ratios.orders_per_s")[1]
    assert "| after | 3 | 5.5 | 5 | 6 | 1 | 18% |" in ratio


def test_the_command_line_says_what_is_missing_in_one_line(tmp_path):
    empty = subprocess.run([sys.executable, "-m", "bench.compare", str(tmp_path)], cwd=ROOT,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert empty.returncode == 1
    assert "no results.json" in empty.stderr
    assert "Traceback" not in empty.stderr
    absent = subprocess.run([sys.executable, "-m", "bench.compare", str(tmp_path / "nope")], cwd=ROOT,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert absent.returncode == 2
    assert "not a directory" in absent.stderr
    _run(tmp_path, "before", "20261201-000000", 400, 3.0)
    ok = subprocess.run([sys.executable, "-m", "bench.compare", str(tmp_path), "--only=pipeline"], cwd=ROOT,
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ok.returncode == 0
    assert "### pipeline_orders_per_s" in ok.stdout
    assert "peers" not in ok.stdout
