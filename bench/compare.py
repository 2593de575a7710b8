"""Compare several benchmark runs: `python -m bench.compare DIR [DIR ...]`.

Reads every `results.json` under each DIR (the runs `manage.py bench` writes, one directory per
run; bench/alternate.sh lays them out as DIR/before/<run>/ and DIR/after/<run>/) and prints, per
numeric figure, a Markdown table: each run's value, then per label (the directory right under
DIR, "before" / "after"; or DIR itself) the median and the spread (max - min, and as a share of
the median). Figures are the flattened headline figures of the report and every number under
`scenarios`, keyed by their path (`scenarios.peers.ratios.orders_per_s`). No third-party module:
it runs without Django."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

SKIP = {"seconds", "scenario_seconds", "quick", "when", "machine", "database", "goals_met"}


def numbers(document: Any, prefix: str = "") -> dict[str, float]:
    """Every int/float leaf of a JSON document, by dotted path (booleans left out)."""
    out: dict[str, float] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            if not prefix and key in SKIP:
                continue
            out.update(numbers(value, f"{prefix}{key}."))
    elif isinstance(document, (int, float)) and not isinstance(document, bool):
        out[prefix.rstrip(".")] = float(document)
    return out


def load(directories: list[Path]) -> list[tuple[str, str, dict[str, float]]]:
    """(label, run name, figures) for every results.json under the directories, each directory's
    runs in the order they ran."""
    runs = []
    for root in directories:
        # In the order they ran: a run's directory is named after its start (YYYYmmdd-HHMMSS).
        for path in sorted(root.rglob("results.json"), key=lambda p: (p.parent.name, str(p))):
            relative = path.parent.relative_to(root)
            label = relative.parts[0] if len(relative.parts) > 1 else root.name
            runs.append((label, str(relative) if relative.parts else root.name, numbers(json.loads(path.read_text()))))
    return runs


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value == int(value) and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.1f}"


def tables(runs: list[tuple[str, str, dict[str, float]]], only: str = "") -> str:
    """One Markdown table per figure present in any run (figures whose path contains `only`)."""
    labels = list(dict.fromkeys(label for label, _, _ in runs))
    metrics = sorted({name for _, _, figures in runs for name in figures if only in name})
    blocks = []
    for metric in metrics:
        lines = [f"### {metric}", "", "| run | " + " | ".join(f"{r}" for _, r, _ in runs) + " |"]
        lines.append("|---" * (len(runs) + 1) + "|")
        lines.append("| value | " + " | ".join(_fmt(f.get(metric)) for _, _, f in runs) + " |")
        lines += [
            "",
            "| label | runs | median | min | max | spread | spread / median |",
            "|---|---|---|---|---|---|---|",
        ]
        for label in labels:
            values = [f[metric] for lab, _, f in runs if lab == label and metric in f]
            if not values:
                continue
            median, low, high = statistics.median(values), min(values), max(values)
            share = f"{(high - low) / abs(median):.0%}" if median else ""
            cells = [label, str(len(values)), _fmt(median), _fmt(low), _fmt(high), _fmt(high - low), share]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--only=")]
    only = next((a.split("=", 1)[1] for a in argv if a.startswith("--only=")), "")
    if not args:
        sys.stderr.write("usage: python -m bench.compare DIR [DIR ...] [--only=SUBSTRING]" + "\n")
        return 2
    missing = [a for a in args if not Path(a).is_dir()]
    if missing:
        sys.stderr.write(f"not a directory: {', '.join(missing)}" + "\n")
        return 2
    runs = load([Path(a) for a in args])
    if not runs:
        sys.stderr.write(f"no results.json under {', '.join(args)}: run `make bench` with --out there first" + "\n")
        return 1
    sys.stdout.write(tables(runs, only) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
