"""`python -m bench` — Switchboard's benchmarks in one run: one table, bench/results.json.

Starts the embedded database (or uses --mongodb-uri), the Telegram sandbox and
`switchboard serve` as child processes on loopback, drives them from this process, and stops
them all. Figures run in the order ingest, live updates, replies, inbox queries; the queries
figure seeds as large an inbox as the time budget leaves room for (see bench/fig_queries.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import (
    fig_ingest,
    fig_live,
    fig_queries,
    fig_replies,
    fig_reports,
    fig_search,
    fig_sustained,
)
from bench.cluster import Cluster
from bench.stats import Clock, fmt, machine, table

HERE = Path(__file__).resolve().parent
FIGURES = ("ingest", "live", "replies", "queries", "search", "reports")
EXTRA_FIGURES = ("sustained",)  # only when asked for: ten minutes and more
DEFAULT_SIZES = [10_000, 100_000, 1_000_000]
REPORTS_SECONDS = 130  # what the reports figure (last) needs: seeding 1M messages' counters


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--mongodb-uri", default=os.environ.get("SWITCHBOARD_BENCH_MONGODB_URI"),
                   help="run against this MongoDB (a scratch database is created and dropped) "
                        "instead of the embedded server")
    p.add_argument("--budget", type=float, default=570.0,
                   help="seconds the whole run may take (default 570, i.e. under 10 minutes)")
    p.add_argument("--sizes", default=None,
                   help="message counts for the inbox-query figure (default 10000,100000,"
                        "1000000; with --quick 500,1500)")
    p.add_argument("--only", default=",".join(FIGURES),
                   help=f"a comma-separated subset of {', '.join(FIGURES + EXTRA_FIGURES)} "
                        "(sustained runs only when named: `make bench-sustained`)")
    p.add_argument("--sustained-seconds", type=float, default=600.0,
                   help="how long the sustained figure runs (default 600)")
    p.add_argument("--sustained-share", type=float, default=0.8,
                   help="the share of the measured capacity it asks for (default 0.8; above 1 "
                        "shows overload: webhooks shed with 503, replies still delivered)")
    p.add_argument("--out", default=str(HERE / "out" / "results.json"),
                   help="where the figures go (bench/out/ is not committed: it holds this "
                        "machine's paths)")
    p.add_argument("--processes", default="1,2",
                   help="server process counts the ingest figure runs with (default 1,2)")
    p.add_argument("--profile", action="store_true",
                   help="record py-spy flame graphs of server and database during ingest c=64 "
                        "(needs `pip install py-spy`; written next to --out)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, a few seconds: checks the benchmark code, measures nothing")
    p.add_argument("--open-rates", default=None, metavar="NEW,B50,B80",
                   help="arrival rates (updates/s) of the open loops: new chats, and (b) at its"
                        " two levels, instead of shares of this run's capacity (to compare two"
                        " commits at the same rates)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a setting of the server processes (e.g. teams.search_indexing=false),"
                        " to measure what a feature costs; repeatable")
    return p.parse_args(argv)


def _params(quick: bool) -> dict[str, dict[str, Any]]:
    if quick:
        return {
            "ingest": {"new_chats": 30, "b_seconds": 1.0, "open_seconds": 1.0,
                       "baseline_n": 200, "processes": (1,)},
            "live": {"clients": 5, "updates": 5, "gap": 0.01},
            "replies": {"idle_n": 3, "replies": 10, "concurrency": 2, "conversations": 4},
            "queries": {"calls": 3},
            "reports": {"messages": 4000, "calls": 3},
        }
    return {
        "ingest": {"new_chats": 1000, "b_seconds": 10.0, "open_seconds": 10.0,
                   "baseline_n": 2000, "processes": (1, 2)},
        "live": {"clients": 100, "updates": 150, "gap": 0.05},
        "replies": {"idle_n": 40, "replies": 150, "concurrency": 8, "conversations": 40},
        "queries": {"calls": 60},
        "reports": {"messages": 1_000_000, "calls": 10},
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # SIGTERM (a `timeout`, a CI runner giving up) cancels the run like Ctrl-C, so the servers
    # it started are stopped: a killed run left its database busy on a core for an hour
    main_task = asyncio.current_task()
    if main_task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    clock = Clock(args.budget)
    only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(only) - set(FIGURES) - set(EXTRA_FIGURES)
    if unknown:
        raise SystemExit(f"unknown figure(s): {', '.join(sorted(unknown))}")
    params = _params(args.quick)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
        [500, 1500] if args.quick else DEFAULT_SIZES
    results: dict[str, Any] = {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "database": "mongodb-uri" if args.mongodb_uri else
                    "embedded SecantusDB (secantusd-py --sync-on-commit, on disk)",
        "figures": {},
    }
    chosen = dict(item.split("=", 1) for item in args.set)
    async with Cluster(mongodb_uri=args.mongodb_uri, keep=args.keep,
                       server_settings=chosen) as cluster:
        results["database_version"] = (await cluster.client.server_info()).get("version") \
            if cluster.client else None  # the MongoDB version the server says it speaks
        if not args.mongodb_uri:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                version = importlib.metadata.version("SecantusDB")
                results["embedded_package"] = f"SecantusDB {version}"
        for name in FIGURES + EXTRA_FIGURES:
            if name not in only:
                continue
            started = time.monotonic()
            load_before = os.getloadavg()[0]
            print(f"[{clock.elapsed():5.0f} s] {name} …", file=sys.stderr, flush=True)
            if name == "ingest":
                ingest = {**params["ingest"], "processes": tuple(
                    int(n) for n in args.processes.split(",") if n.strip())}
                if args.open_rates:
                    new, b50, b80 = (float(r) for r in args.open_rates.split(","))
                    ingest["open_rates"] = (new, b50, b80)
                out = await fig_ingest.run(
                    cluster, **ingest, profile=args.profile,
                    profile_dir=Path(args.out).parent / "profiles")
            elif name == "live":
                out = await fig_live.run(cluster, **params["live"])
            elif name == "replies":
                out = await fig_replies.run(cluster, **params["replies"])
            elif name == "sustained":
                out = await fig_sustained.run(cluster, seconds=args.sustained_seconds,
                                              share=args.sustained_share)
            elif name == "reports":
                out = await fig_reports.run(cluster, **params["reports"])
            elif name == "search":
                budget = clock.left() - 15 - (REPORTS_SECONDS if "reports" in only else 0)
                out = await fig_search.run(cluster, sizes=sizes, budget_s=budget,
                                           calls=params["queries"]["calls"] // 2 or 3)
            else:
                # the search figure (last) gets a third of what is left
                budget = (clock.left() - 15 - (REPORTS_SECONDS if "reports" in only else 0)) \
                    * (0.66 if "search" in only else 1.0)
                out = await fig_queries.run(cluster, sizes=sizes, budget_s=budget,
                                            **params["queries"])
            out["seconds"] = round(time.monotonic() - started, 1)
            out["loadavg_1min_before_after"] = [round(load_before, 2),
                                                round(os.getloadavg()[0], 2)]
            results["figures"][name] = out
    results["seconds"] = round(clock.elapsed(), 1)
    return results


# ---------------------------------------------------------------------- the table


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" — met" if ok else " — missed")


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    figs = results["figures"]
    out: list[tuple[str, str, str, str]] = []
    if "ingest" in figs:
        out.extend(ingest_rows(figs["ingest"]))
    if "queries" in figs:
        f = figs["queries"]
        sizes = f["sizes"]
        if sizes:
            small, large = sizes[0], sizes[-1]
            for key, label in (("open_first_page", "open, newest first, 50"),
                               ("open_next_page", "next page by cursor (pages 2-10)"),
                               ("messages_latest_50_large", "latest 50 messages, largest conv."),
                               ("messages_latest_50_typical", "latest 50 messages, typical conv.")):
                parts = [f"{_size(s['messages'])}: {fmt(s[key]['p50_ms'])}/"
                         f"{fmt(s[key]['p95_ms'])} ms" for s in sizes]
                ratio = (large[key]["p95_ms"] or 0) / (small[key]["p95_ms"] or 1)
                target = (f"p95 {_size(large['messages'])} ≤ 2× p95 "
                          f"{_size(small['messages'])}: {ratio:.2f}×"
                          + _verdict(ratio <= 2.0)) if len(sizes) > 1 else "—"
                out.append(("2 queries", f"{label}, p50/p95", " · ".join(parts), target))
                plans = [s[key]["plan"] for s in sizes]
                docs = " / ".join(fmt(p["docs_examined_per_call"]["p50"]) for p in plans)
                ix = "IXSCAN " + ",".join(sorted({i for p in plans for i in p["indexes"]})) \
                    if all(p["all_ixscan"] for p in plans) else "NOT all index scans"
                out.append(("2 queries", "  plan, docs examined per call (p50, by size)",
                            f"{ix}; {docs}", "—"))
        for skipped in f.get("skipped", []):
            out.append(("2 queries", f"{_size(skipped['messages'])} messages: not seeded in "
                        "the time budget", skipped["reason"], "—"))
    if "live" in figs:
        f = figs["live"]
        lat = f["latency_from_200"]
        out.append(("3 live", f"webhook 200 → SSE event, {f['connected']} clients",
                    f"p50/p95/p99 {fmt(lat['p50_ms'])}/{fmt(lat['p95_ms'])}/"
                    f"{fmt(lat['p99_ms'])} ms ({f['deliveries_missing']} of "
                    f"{f['deliveries_expected']} missing)",
                    "p95 < 250 ms" + _verdict((lat["p95_ms"] or 1e9) < 250
                                              and f["deliveries_missing"] == 0)))
        rss = f["server_rss_mib"]["with_clients"]
        out.append(("3 live", "server RSS with the clients (VmRSS, server process only)",
                    f"{fmt(rss)} MiB (database process, not included: "
                    f"{fmt(f['database_rss_mib'])} MiB)",
                    "< 200 MB" + _verdict(rss is not None and rss * 1.048576 < 200)))
    if "replies" in figs:
        f = figs["replies"]
        idle = f["idle"]
        out.append(("4 replies", "POST → sandbox has it, idle",
                    f"p50/p95 {fmt(idle['p50_ms'])}/{fmt(idle['p95_ms'])} ms",
                    "p95 < 300 ms" + _verdict((idle["p95_ms"] or 1e9) < 300)))
        other = f.get("accepted_by_one_process_sent_by_another")
        if other:
            out.append(("4 replies", "accepted by one process, sent by another's worker",
                        f"p50/p95 {fmt(other['p50_ms'])}/{fmt(other['p95_ms'])} ms "
                        f"({other['not_received_in_10s']} not in 10 s)",
                        "p95 < 100 ms" + _verdict((other["p95_ms"] or 1e9) < 100)))
        for key, label in (("sustained_no_429", "sustained, no 429s"),
                           ("sustained_10pct_429", "sustained, 10% answered 429")):
            s = f[key]
            out.append(("4 replies", f"{label}: {s['replies']} replies, {s['concurrency']} "
                        "posters", f"{fmt(s['replies_per_s'])} replies/s; {s['answered_429']} "
                        f"429s; exactly once: {'yes' if s['exactly_once'] else 'NO'}",
                        "all delivered exactly once" + _verdict(s["exactly_once"])
                        if key == "sustained_10pct_429" else "—"))
    if "sustained" in figs:
        f = figs["sustained"]
        worst_in = min(m["ingest_per_s"] for m in f["minutes"])
        worst_out = min(m["replies_per_s"] for m in f["minutes"])
        p99 = max(m["ingest_p99_ms"] or 0 for m in f["minutes"])
        out.append(("5 sustained", f"{f['seconds'] / 60:.0f} min at {f['share_of_capacity']:.0%}"
                    f": ingest {fmt(f['ingest_target_per_s'])}/s, replies "
                    f"{fmt(f['replies_target_per_s'])}/s", f"slowest minute: {fmt(worst_in)} "
                    f"acks/s, {fmt(worst_out)} replies/s; worst minute's ingest p99 {fmt(p99)} ms;"
                    f" errors {f['errors'] or 'none'}", "holds its rate" + _verdict(f["held"])))
    return out + _search_rows(figs)


def _search_rows(figs: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return (fig_search.table_rows(figs["search"]) if "search" in figs else []) + \
        (fig_reports.table_rows(figs["reports"]) if "reports" in figs else [])


def ingest_rows(f: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    b = f["baseline"]
    for when in ("before", "after"):
        r = b[when]
        out.append(("1 ingest", f"baseline ({when}): bare insert_one c=1 / c=64, fresh server",
                    f"{fmt(r['insert_one_c1']['docs_per_s'])} / "
                    f"{fmt(r['insert_one_c64']['docs_per_s'])} docs/s; insert_many-of-64 "
                    f"ceiling {fmt(r['insert_many_64']['docs_per_s'])} docs/s", "—"))
    best = b["docs_per_s"]
    for name, run in f["runs"].items():
        for key, label in (("a_new_conversations", "(a) half new chats"),
                           ("b_existing_conversations", "(b) existing chats")):
            r = run[key]
            ratio = r["ratio_to_baseline"]
            out.append(("1 ingest", f"{name}: {label}, c=64, {r['acked']} acked",
                        f"{fmt(r['updates_per_s'])} updates/s = {ratio:.2f}× {fmt(best)}/s; "
                        f"p50/p99 {fmt(r['p50_ms'])}/{fmt(r['p99_ms'])} ms",
                        "≥ 2.0×" + _verdict(ratio >= 2.0)))
        out.append(_db_cpu_row(name, run, b.get("db_cpu_ms_per_doc")))
        lag = run["a_new_conversations"]["listed_after_ack"]
        out.append(("1 ingest", f"{name}: new conversation on /api/events after its ack",
                    f"p50/p99/max {fmt(lag['p50_ms'])}/{fmt(lag['p99_ms'])}/"
                    f"{fmt(lag['max_ms'])} ms; {lag['not_listed_within_10s']} not in 10 s",
                    "< 1 s" + _verdict((lag["max_ms"] or 1e9) < 1000
                                       and not lag["not_listed_within_10s"])))
        nc = run.get("open_loop_new_chats")
        if nc:
            lag = nc["listed_after_ack"]
            out.append(("1 ingest", f"{name}: open loop, half new chats at "
                        f"{nc.get('share_of_capacity', 0.5):.0%} of (a), "
                        f"{fmt(nc['rate_per_s'])}/s", f"p50/p99 ack {fmt(nc['p50_ms'])}/"
                        f"{fmt(nc['p99_ms'])} ms; listed after ack p50/p99/max "
                        f"{fmt(lag['p50_ms'])}/{fmt(lag['p99_ms'])}/{fmt(lag['max_ms'])} ms",
                        "< 1 s" + _verdict((lag["max_ms"] or 1e9) < 1000
                                           and not lag["not_listed_within_10s"])))
        for level in run["open_loop"]:
            share = level["share_of_capacity"]
            target = "p99 < 50 ms" + _verdict((level["p99_ms"] or 1e9) < 50) \
                if share == 0.5 else "—"
            out.append(("1 ingest", f"{name}: open loop at {share:.0%} of (b), "
                        f"{fmt(level['rate_per_s'])}/s", f"p50/p99 {fmt(level['p50_ms'])}/"
                        f"{fmt(level['p99_ms'])} ms ({level['acked']}/{level['sent']} acked)",
                        target))
    return out


def _db_cpu_row(name: str, run: dict[str, Any], bare: float | None,
                ) -> tuple[str, str, str, str]:
    """The database's CPU time per acknowledged message, its followers' work included, against
    a bare insert_one's: the ratio the rates would show if both kept the database equally busy
    (it is the limit), and one that a noisy machine disturbs less than the rates."""
    a, b = run["a_new_conversations"], run["b_existing_conversations"]
    costs = [r.get("db_cpu_ms_per_message") for r in (a, b)]
    if bare is None or None in costs:
        return ("1 ingest", f"{name}: database CPU per acknowledged message",
                "not measured (no CPU time of the database was read: with --mongodb-uri it "
                "is not a child of this run)", "—")
    ratios = " / ".join(f"{r.get('db_cpu_ratio_to_baseline', 0):.2f}×" for r in (a, b))
    return ("1 ingest", f"{name}: database CPU per acknowledged message, until followers drained",
            f"(a) {costs[0]:.2f} / (b) {costs[1]:.2f} ms against bare insert_one's {bare:.2f} ms"
            f" = {ratios}", "—")


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else \
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    head = (f"Switchboard benchmarks — {results['started_at']}, {results['seconds']} s, "
            f"{results['database']}\nmachine: {m['nproc']} CPUs ({m['cpu']}), "
            f"{m['memory_gib']} GiB RAM, Python {m['python']}, Linux {m['kernel']}, "
            f"load average at start {m['loadavg_at_start'][0]}")
    return head + "\n\n" + table(rows(results))


def run(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        results = asyncio.run(main(args))
    except asyncio.CancelledError:
        print("stopped (SIGTERM); the processes it started are stopped", file=sys.stderr)
        return 143
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str) + "\n")
    print(render(results))
    print(f"\nwritten: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run())
