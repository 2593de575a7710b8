"""The benchmark's outputs: the table printed at the end, the JSON under var/bench/, and a PNG
of the latency distributions."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report_extra

GOALS = {
    "relay_events_per_s": (">=", 50_000),
    "pipeline_orders_per_s": (">=", 1_000),
    "placed_reserved_p50": ("<=", 3.0),
    "placed_reserved_p99": ("<=", 15.0),
    "placed_notified_p99": ("<=", 40.0),
    "http_requests_per_s": (">=", 600),
    "http_errors": ("==", 0),
    "burst_lost": ("==", 0),
    "burst_errors_5xx": ("==", 0),
    "burst_drain_s": ("<=", 20.0),
    "consumer_rss_growth_mb": ("<=", 10.0),
    "spike_lost": ("==", 0),
    "spike_duplicate_orders": ("==", 0),
    "email_per_s": (">=", 100),
    "email_drain_s": ("<=", 120.0),
}
GOALS.update(report_extra.GOALS)  # issue 23: peers, the database's ceiling, the relay's ratio
SPIKE_OUTCOMES = ("taken", "refused", "other_4xx", "5xx", "other", "timed_out", "reset")


def flatten(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures, under the names the issue asks for."""
    out: dict[str, Any] = {}
    if "relay" in results:
        r = results["relay"]
        out["relay_events_per_s"] = r["relay_events_per_s"]
        out["relay_ceiling_xadd_per_s"] = r["ceiling_xadd_per_s"]
        out["relay_ratio"] = r["ratio"]
    if "pipeline" in results:
        p = results["pipeline"]
        out["pipeline_orders_per_s"] = p["pipeline_orders_per_s"]
        out["pipeline_ceiling_commits_per_s"] = p["ceiling_commits_per_s"]
        out["pipeline_ratio"] = p["ratio"]
    if "latency" in results:
        phases = results["latency"]["phases"]
        out["latency_ms"] = phases.get("100_per_s")
        out["latency_ms_500_per_s"] = phases.get("500_per_s")
    if "http" in results:
        h = results["http"]
        out["http_requests_per_s"] = h["http_requests_per_s"]
        out["http_errors"] = h["http_errors"]
        out["http_latency_ms"] = h["latency_ms"]
        out["http_loadgen_cpu_share"] = h["loadgen_cpu_share"]
        if "web_alone" in h:
            out["http_web_alone_requests_per_s"] = h["web_alone"]["http_requests_per_s"]
            out["http_web_alone_errors"] = h["web_alone"]["http_errors"]
    if "burst" in results:
        b = results["burst"]
        out["burst"] = {
            k: b[k]
            for k in ("accepted", "refused", "lost", "errors_5xx", "drain_s", "peak_outbox", "peak_stream_backlog")
        }
    if "memory" in results:
        out["consumer_rss_growth_mb"] = results["memory"]["consumer_rss_growth_mb"]
    if "spike" in results:
        s = results["spike"]
        out["spike"] = {
            "customers": s["customers"],
            **{
                phase: {
                    **{k: s[phase][k] for k in ("answered", *SPIKE_OUTCOMES, "keys_taken", "taken_per_s")},
                    "latency_ms": s[phase]["latency_ms"],
                }
                for phase in ("phase1", "phase2")
            },
            **{k: s["orders"][k] for k in ("phase1_ghost", "phase2_ghost", "lost", "duplicate_orders")},
            "drain_s": s["drain"]["drain_s"],
            "drained": s["drain"]["drained"],
            "ceiling_xadd_per_s": s["ceiling"]["xadd_per_s"],
            "loadgen_cpu_s": s["loadgen_cpu_s"],
        }
    if "email" in results:
        out["email"] = {k: results["email"][k] for k in ("backlog", "emails_per_s", "drain_s", "ceiling_smtplib_per_s")}
    out.update(report_extra.flatten(results))
    return out


def _goal_values(flat: dict[str, Any]) -> dict[str, Any]:
    values = {
        k: flat[k]
        for k in (
            "relay_events_per_s",
            "pipeline_orders_per_s",
            "http_requests_per_s",
            "http_errors",
            "consumer_rss_growth_mb",
        )
        if k in flat
    }
    latency = flat.get("latency_ms") or {}
    if latency:
        values["placed_reserved_p50"] = latency["placed_reserved"]["p50"]
        values["placed_reserved_p99"] = latency["placed_reserved"]["p99"]
        values["placed_notified_p99"] = latency["placed_notified"]["p99"]
    if "burst" in flat:
        values["burst_lost"] = flat["burst"]["lost"]
        values["burst_errors_5xx"] = flat["burst"]["errors_5xx"]
        values["burst_drain_s"] = flat["burst"]["drain_s"]
    if "spike" in flat:
        values["spike_lost"] = flat["spike"]["lost"]
        values["spike_duplicate_orders"] = flat["spike"]["duplicate_orders"]
    if "email" in flat:
        values["email_per_s"] = flat["email"]["emails_per_s"]
        values["email_drain_s"] = flat["email"]["drain_s"]
    values.update(report_extra.goal_values(flat))
    return values


def verdicts(flat: dict[str, Any]) -> dict[str, bool]:
    out = {}
    for name, value in _goal_values(flat).items():
        op, goal = GOALS[name]
        out[name] = {">=": value >= goal, "<=": value <= goal, "==": value == goal}[op]
    return out


def table(results: dict[str, Any], flat: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []  # metric, measured, ceiling / ratio, goal
    passed = verdicts(flat)

    def goal(name: str) -> str:
        if name not in GOALS:
            return ""
        op, value = GOALS[name]
        mark = "" if name not in passed else ("  ok" if passed[name] else "  MISSED")
        return f"{op} {value:,}{mark}"

    def add(metric: str, measured: str, detail: str, goal_name: str = "") -> None:
        rows.append((metric, measured, detail, goal(goal_name) if goal_name else ""))

    if "relay" in results:
        r = results["relay"]
        add("relay drain, events/s", f"{r['relay_events_per_s']:,}",
            f"XADD {r['ceiling_xadd_per_s']:,}/s, ratio {r['ratio']:.2f}", "relay_events_per_s")  # fmt: skip
    if "pipeline" in results:
        p = results["pipeline"]
        add("pipeline, orders/s", f"{p['pipeline_orders_per_s']:,}",
            f"commits {p['ceiling_commits_per_s']:,}/s, ratio {p['ratio']:.3f}", "pipeline_orders_per_s")  # fmt: skip
    if "latency" in results:
        for phase, stages in results["latency"]["phases"].items():
            rate = phase.split("_")[0]
            for stage, s in stages.items():
                goals = [f"{q} {goal(f'{stage}_{q}')}" for q in ("p50", "p99") if goal(f"{stage}_{q}")]
                rows.append((
                    f"{stage.replace('_', ' -> ')} @{rate}/s, ms",
                    f"p50 {s['p50']}  p95 {s['p95']}  p99 {s['p99']}  max {s['max']}",
                    f"n={s['n']}", " ".join(goals) if rate == "100" else "",
                ))  # fmt: skip
    if "http" in results:
        h = results["http"]
        lat = h["latency_ms"]
        add("http (64 clients), orders/s", f"{h['http_requests_per_s']:,}",
            f"loadgen CPU {h['loadgen_cpu_share']:.0%} of a core", "http_requests_per_s")  # fmt: skip
        add("http latency, ms", f"p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}",
            f"server CPU {h['server_cpu_share']:.0%}")  # fmt: skip
        add("http errors", f"{h['http_errors']}", json.dumps(h["statuses"]), "http_errors")
        if "web_alone" in h:
            a = h["web_alone"]
            lat = a["latency_ms"]
            add("http, web alone (pipeline stopped)", f"{a['http_requests_per_s']:,}/s, {a['http_errors']} errors",
                f"p50 {lat['p50']} p99 {lat['p99']} ms; drained in {a['drain_s']} s")  # fmt: skip
    if "burst" in results:
        b = results["burst"]
        add("burst: accepted / refused", f"{b['accepted']:,} / {b['refused']:,}",
            f"of {b['offered']:,} over {b['connections']} connections in {b['offer_s']} s")  # fmt: skip
        add("burst: lost, 5xx", f"{b['lost']}, {b['errors_5xx']}", f"other errors {b['other_errors'] or 0}",
            "burst_lost")  # fmt: skip
        peaks = f"peak outbox {b['peak_outbox']:,}, peak streams {b['peak_stream_backlog']:,}"
        add("burst: drain, s", f"{b['drain_s']}", peaks, "burst_drain_s")
    if "memory" in results:
        m = results["memory"]
        detail = ", ".join(f"{g} {m['rss_mb_first'][g]:.0f}->{m['rss_mb_last'][g]:.0f}" for g in m["growth_mb"])
        add(f"consumer RSS growth, MB ({m['events_first']:,}->{m['events_last']:,} events)",
            f"{m['consumer_rss_growth_mb']}", detail, "consumer_rss_growth_mb")  # fmt: skip

    if "spike" in results:
        rows += _spike_rows(results["spike"], goal)
    if "scale" in results:
        rows += _scale_rows(results["scale"])
    if "email" in results:
        e = results["email"]
        add("email: one mailer, e-mails/s", f"{e['emails_per_s']:,}",
            f"smtplib alone {e['ceiling_smtplib_per_s']:,}/s, ratio {e['ratio']:.2f}", "email_per_s")  # fmt: skip
        add(f"email: drain {e['backlog']:,} waiting, s", f"{e['drain_s']}", f"unsent after: {e['unsent_after']}",
            "email_drain_s")  # fmt: skip
    rows += report_extra.rows(results, goal)

    widths = [max(len(r[i]) for r in [("metric", "measured", "ceiling / detail", "goal"), *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    out = [
        "  ".join(h.ljust(w) for h, w in zip(("metric", "measured", "ceiling / detail", "goal"), widths, strict=True)),
        line,
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _scale_rows(s: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per layout of the scale scenario (on one Redis, then on the local cluster), and
    the CPU per order of each part."""
    rows = []
    cluster = s.get("cluster") or {}
    for where, runs in (
        ("one Redis", s["runs"]), ("3-master cluster", cluster.get("runs") or {}),
        ("3-master cluster, WAIT 1 replica", cluster.get("wait_replicas_1") or {}),
    ):  # fmt: skip
        for run in runs.values():
            k, lat = run["consumers_per_group"], run["placed_reserved_ms"]
            label = f"scale ({where}): {s['partitions']} partitions, {k} consumer(s)/group"
            rows.append((f"{label}, orders/s", f"{run['pipeline_orders_per_s']:,}", f"{s['orders']:,} orders", ""))
            rows.append((f"{label}, placed -> reserved @100/s, ms", f"p50 {lat['p50']}  p99 {lat['p99']}",
                         f"notified p99 {run['placed_notified_ms']['p99']}", ""))  # fmt: skip
            cpu = ", ".join(f"{part} {ms:.2f}" for part, ms in run["cpu_ms_per_order"].items())
            rows.append((f"{label}, CPU ms/order", f"{sum(run['cpu_ms_per_order'].values()):.2f}", cpu, ""))
    if cluster.get("skipped"):
        rows.append(("scale on a 3-master cluster", "not run", cluster["skipped"], ""))
    return rows


def _ms(q: dict[str, Any]) -> str:
    return f"p50 {q['p50']}  p90 {q['p90']}  p99 {q['p99']}  max {q['max']}"


def _spike_rows(s: dict[str, Any], goal: Callable[[str], str]) -> list[tuple[str, str, str, str]]:
    """The spike's rows of the table (bench.scenarios.spike says what each figure means)."""
    p1, p2, orders, drain, ceiling = s["phase1"], s["phase2"], s["orders"], s["drain"], s["ceiling"]
    outcomes = " / ".join(SPIKE_OUTCOMES)
    rows = [
        (f"spike: customers ({s['web']['processes']} web processes)", f"{s['customers']:,}",
         f"connects started within {p1['ramp_s']} s; patience {s['patience_s']:g} s", ""),
    ]  # fmt: skip
    for name, p in (("phase 1", p1), (f"phase 2 ({p2['customers']:,} x {p2['stay_s']:g} s)", p2)):
        rows += [
            (f"spike {name}: requests / answered", f"{p['requests']:,} / {p['answered']:,}",
             f"statuses {json.dumps(p['statuses'])}", ""),
            (f"spike {name}: {outcomes}", " / ".join(f"{p[o]:,}" for o in SPIKE_OUTCOMES),
             f"errors {json.dumps(p['errors']) if p['errors'] else 0}", ""),
            (f"spike {name}: refused with / without Retry-After; JSON",
             f"{p['refused_with_retry_after']:,} / {p['refused_without_retry_after']:,}; "
             f"{p['refused_with_json']:,} / {p['refused_without_json']:,}", "", ""),
            (f"spike {name}: answer latency, ms", _ms(p["latency_ms"]), f"n={p['latency_ms']['n']:,}", ""),
            (f"spike {name}: connect, ms", _ms(p["connect_ms"]), f"n={p['connect_ms']['n']:,}", ""),
            (f"spike {name}: taken orders/s", f"{p['taken_per_s']}",
             f"ceiling: raw XADD {ceiling['xadd_per_s']:,}/s (50 clients, one per call)", ""),
        ]  # fmt: skip
    for phase in ("1", "2"):
        created, told = orders[f"phase{phase}_created"], orders[f"phase{phase}_told_taken"]
        rows.append((f"spike phase {phase}: orders created / told taken", f"{created:,} / {told:,}",
                     f"ghost orders {orders[f'phase{phase}_ghost']:+,}", ""))  # fmt: skip
    rows += [
        ("spike phase 2: keys taken / abandoned", f"{p2['keys_taken']:,} / {p2['keys_abandoned']:,}",
         f"reconnects after keep-alive close {p2['reconnects']:,}", ""),
        ("spike: lost (taken, no order)", f"{orders['lost']}",
         f"wrong id {orders['wrong_id']}, unknown {orders['unknown']}, pending {orders['still_pending']}",
         goal("spike_lost")),
        ("spike: duplicate orders per key", f"{orders['duplicate_orders']}",
         f"keys with duplicates {orders['keys_with_duplicates']}", goal("spike_duplicate_orders")),
        ("spike: drain after the last request, s", f"{drain['drain_s']}",
         f"{'drained' if drain['drained'] else 'NOT drained'} (waited {drain['waited_s']} s, cap {drain['cap_s']:g})",
         ""),
        ("spike: CPU s, load generator / web", f"{s['loadgen_cpu_s']} / {s['web']['cpu_s']}",
         f"ceiling run {ceiling['cpu_s']} s", ""),
        ("spike: machine busy during the load (all cores)", f"{s['machine']['cpu_busy_share']:.0%}",
         f"load average {s['machine']['loadavg_1m_before']} -> {s['machine']['loadavg_1m_after']}", ""),
    ]  # fmt: skip
    return rows


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency distributions (CDFs, log scale): the pipeline stages at each rate, and HTTP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels = []
    if "latency" in results:
        for rate, stages in results["latency"]["_samples"].items():
            panels.append((f"Pipeline at {rate} orders/s (commit to commit)", stages))
    http_series = {}
    if "http" in results:
        http_series["64 clients, full system"] = results["http"]["_latencies"]
        if "web_alone" in results["http"]:
            http_series["64 clients, web alone"] = results["http"]["web_alone"]["_latencies"]
    if "burst" in results:
        http_series["burst, 1,000 connections"] = results["burst"]["_latencies"]
    if "spike" in results:
        for phase, label in (("phase1", "spike, arrival"), ("phase2", "spike, staying customers")):
            http_series[label] = results["spike"]["_latencies"][phase]
    if http_series:
        panels.append(("HTTP POST /api/orders/ (client side)", http_series))
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        for label, values in series.items():
            ordered = sorted(v for v in values if v > 0)
            if not ordered:
                continue
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot(ordered, ys, label=f"{label.replace('_', ' -> ')} (n={len(ordered):,})")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("milliseconds (log)")
        ax.set_ylabel("fraction of requests / orders")
        ax.set_ylim(0, 1.01)
        for q in (0.5, 0.99):
            ax.axhline(q, color="grey", linewidth=0.5, linestyle=":")
        ax.grid(True, which="both", linewidth=0.3)
        ax.set_title(title)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def clean(value: Any) -> Any:
    """JSON-ready: drop raw samples (they go to the plot), NaN to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
