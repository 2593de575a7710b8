"""The report's parts for issue 23: the peer (Celery) side by side, the hops of the latency
scenario, the pipeline against the database's own ceiling, and their goals. bench.report calls
these; they live here so that the report's own module stays as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.hops import rows as hop_rows

GOALS = {
    "relay_ratio": (">=", 0.6),  # the relay against raw pipelined XADD, same run
    "pipeline_ratio_to_database": (">=", 0.7),  # the pipeline against pgbench of its writes
    "peers_orders_per_s_ratio": (">=", 5.0),  # project / Celery, the 5,000-order workload
    # project / Celery latencies at 20 and 100 orders/s: below 1 means below Celery's
    **{
        f"peers_{rate}_per_s_{stage}_{q}_ratio": ("<=", 1.0)
        for rate in (20, 100)
        for stage in ("placed_confirmed", "placed_notified")
        for q in ("p50", "p99")
    },
}
Row = tuple[str, str, str, str]


def flatten(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    database = (results.get("pipeline") or {}).get("database") or {}
    if "ratio_to_database" in database:
        out["pipeline_database_ceiling_orders_per_s"] = database["ceiling_orders_per_s"]
        out["pipeline_ratio_to_database"] = database["ratio_to_database"]
    if "hops" in (results.get("latency") or {}):
        out["latency_hops_ms"] = results["latency"]["hops"]
    peers = results.get("peers") or {}
    if "ratios" in peers:
        out["peers"] = {
            "celery_orders_per_s": peers["celery"]["throughput"]["orders_per_s"],
            "project_orders_per_s": peers["project"]["throughput"]["orders_per_s"],
            "ratios": peers["ratios"],
        }
    return out


def goal_values(flat: dict[str, Any]) -> dict[str, Any]:
    values = {k: flat[k] for k in ("relay_ratio", "pipeline_ratio_to_database") if k in flat}
    ratios = (flat.get("peers") or {}).get("ratios") or {}
    if "orders_per_s" in ratios:
        values["peers_orders_per_s_ratio"] = ratios["orders_per_s"]
    for name in GOALS:
        key = name.removeprefix("peers_").removesuffix("_ratio")
        if name.startswith("peers_") and key in ratios and ratios[key] is not None:
            values[name] = ratios[key]
    return values


def rows(results: dict[str, Any], goal: Callable[[str], str]) -> list[Row]:
    out: list[Row] = []
    database = (results.get("pipeline") or {}).get("database") or {}
    if "ratio_to_database" in database:
        out.append(("pipeline against the database's ceiling", f"{database['ratio_to_database']:.3f}",
                    f"pgbench of this design's writes {database['ceiling_orders_per_s']:,} orders/s "
                    f"({database['clients']} clients, batches of {database['batch']})",
                    goal("pipeline_ratio_to_database")))  # fmt: skip
    elif "skipped" in database:
        out.append(("pipeline against the database's ceiling", "not run", database["skipped"], ""))
    if "relay" in results:
        out.append(("relay against raw pipelined XADD", f"{results['relay']['ratio']:.2f}", "", goal("relay_ratio")))
    if "hops" in (results.get("latency") or {}):
        out += hop_rows(results["latency"]["hops"])
    peers = results.get("peers") or {}
    if "skipped" in peers:
        out.append(("peers (Celery side by side)", "not run", peers["skipped"], ""))
    elif "ratios" in peers:
        out += _peer_rows(peers, goal)
    return out


def _peer_rows(peers: dict[str, Any], goal: Callable[[str], str]) -> list[Row]:
    c, p, r = peers["celery"], peers["project"], peers["ratios"]
    n = c["throughput"]["orders"]
    out: list[Row] = [
        (f"peers: end-to-end orders/s, {n:,} orders from 4 threads", f"{p['throughput']['orders_per_s']:,}",
         f"Celery {c['throughput']['orders_per_s']:,}; ratio {r['orders_per_s']}", goal("peers_orders_per_s_ratio")),
    ]  # fmt: skip
    for phase in (k for k in c if k != "throughput"):
        rate = phase.split("_")[0]
        for stage in ("placed_confirmed", "placed_notified"):
            mine, theirs = p[phase][stage], c[phase][stage]
            ratio = f"ratio p50 {r[f'{phase}_{stage}_p50']}, p99 {r[f'{phase}_{stage}_p99']}"
            goals = [goal(f"peers_{phase}_{stage}_{q}_ratio") for q in ("p50", "p99")]
            out.append((f"peers @{rate}/s: {stage.replace('_', ' -> ')}, ms", f"p50 {mine['p50']}  p99 {mine['p99']}",
                        f"Celery p50 {theirs['p50']}  p99 {theirs['p99']}; {ratio}",
                        " / ".join(g for g in goals if g)))  # fmt: skip
    return out
