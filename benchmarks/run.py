"""The benchmark suite of pylazer_sync: ``python benchmarks/run.py [--quick]``.

Measures, in one run and against simulators in processes of their own: end-to-end
throughput against a bare websocket-client reader (the ceiling) and the official
TypeScript SDK, latency at 1,000 updates/s with and without one slow connection, CPU
and memory over a long flood, and the protocol decode micro-benchmarks. Prints the
tables, writes ``benchmarks/results/latest.json``, ``throughput.png`` and
``latency.png``, and puts the tables into ``benchmarks/README.md``. See that README for
what each figure means. These are benchmarks that print figures, not timed tests: the
exit status is 0 whether or not the targets hold (2 if a section failed to run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import latency
import memory
import relay
import throughput
import ts_sdk
from common import BENCH_DIR, PYTHON, RESULTS_DIR, ROOT, BenchError

SECTIONS = ("decode", "throughput", "latency", "cost", "relay")
README = BENCH_DIR / "README.md"
_START, _END = "<!-- results:start -->", "<!-- results:end -->"


def log(text: str) -> None:
    print(text, flush=True)


# -- settings ---------------------------------------------------------------------


def settings_for(quick: bool) -> dict[str, Any]:
    if not quick:
        return {
            "throughput": throughput.Settings(),
            "latency": latency.Settings(),
            "cost": memory.Settings(),
            "decode": {"repeat": 3, "min_time": 0.2},
            "relay": relay.Settings(),
        }
    return {
        "throughput": throughput.Settings(
            conns=(1, 4),
            warmup=0.3,
            seconds=1.0,
            client_warmup_max=1.5,
            raw_conns=(1,),
            raw_seconds=0.5,
            ts_conns=(4,),
            ts_warmup=1.0,
            bare_repeats=1,
        ),
        "latency": latency.Settings(seconds=2.0, warmup=0.5),
        "cost": memory.Settings(seconds=12.0, warmup=6.0, window=3.0),
        "decode": {"repeat": 3, "min_time": 0.05},
        "relay": relay.QUICK,
    }


def background_load(seconds: float = 1.0) -> dict[str, Any]:
    """Who else uses the CPU (the machine is shared: figures taken under load are worse)."""
    out: dict[str, Any] = {"loadavg": [round(x, 2) for x in os.getloadavg()]}
    try:
        import psutil
    except ImportError:
        return out
    mine = {os.getpid()}
    procs = list(psutil.process_iter(["pid", "cmdline"]))
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(seconds)
    busy = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct >= 5.0 and p.pid not in mine:
            cmd = " ".join(p.info["cmdline"] or [])[:100]
            busy.append({"pid": p.pid, "cpu_percent": pct, "cmd": cmd})
    out["busy_processes"] = sorted(busy, key=lambda b: -b["cpu_percent"])
    out["busy_cpu_percent"] = round(sum(b["cpu_percent"] for b in busy), 1)
    return out


# -- sections ---------------------------------------------------------------------


def run_decode(repeat: int, min_time: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decode.json"
        argv = [PYTHON, str(BENCH_DIR / "bench_protocol.py"), "--json", str(out)]
        argv += ["--repeat", str(repeat), "--min-time", str(min_time)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
        if done.returncode != 0:
            raise BenchError(f"bench_protocol.py failed: {done.stderr.strip()[-500:]}")
        results: dict[str, float] = json.loads(out.read_text())["results"]
    return results


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=10, cwd=ROOT, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "pylazer_sync": version("pylazer-sync"),
        "websocket_client": version("websocket-client"),
        "websockets": version("websockets"),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_package": bool(git("status", "--porcelain", "--", "pylazer_sync")),
    }


# -- targets and tables -------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure measured in this run."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, op: str, bound: float, unit: str = "") -> None:
        ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append(
            {"target": name, "value": value, "op": op, "bound": bound, "unit": unit, "ok": ok}
        )

    # Issue 11's targets: against the TS SDK in the same run, at 1 and at 4 connections.
    for row in results.get("throughput", {}).get("summary", []):
        d, n = row["delivery"], row["conns"]
        if n in (1, 4):
            add(f"{d}, {n} conn(s): ours / TS SDK unique/s", row["ratio_ours_vs_ts"], ">=", 1.0)
            ours, theirs = row.get("cpu_per_100k_ours"), row.get("cpu_per_100k_ts")
            add(
                f"{d}, {n} conn(s): CPU per 100k updates, ours / TS SDK",
                ours / theirs if ours is not None and theirs else None,
                "<=",
                1.0,
            )
        if n == 1:
            add(
                f"{d}, 1 conn: recv_many / bare recv() frames/s",
                row["ratio_recv_many_vs_bare"],
                ">=",
                0.8,
            )
    lat = results.get("latency")
    rows = [r for r in lat if "error" not in r] if isinstance(lat, list) else []
    ts_row = next((r for r in rows if r["scenario"] == "TS SDK"), None)
    for row in rows:
        if not row["scenario"].startswith("ours"):
            continue
        q = row["latency_ms"]
        if ts_row is not None:
            add(
                f"latency p50 / TS SDK p50, {row['scenario']}",
                q["p50"] / ts_row["latency_ms"]["p50"],
                "<=",
                1.5,
            )
        add(f"latency p99, {row['scenario']}", q["p99"], "<=", 1.0, "ms")
    cost = results.get("cost")
    if cost and "flat" in cost:
        add(
            f"RSS growth over the {cost['seconds']:.0f} s flood (flat)",
            cost["rss_growth_mb"],
            "<=",
            max(2.0, 0.05 * cost["rss_warm_mb"]),
            "MiB",
        )
    return out


def _f(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def tables(results: dict[str, Any]) -> str:
    """Every section as Markdown tables (readable in a terminal too)."""
    lines: list[str] = []
    meta = results["meta"]
    m = meta["machine"]
    busy = [meta.get(k, {}).get("busy_cpu_percent") for k in ("load_before", "load_after")]
    lines += [
        f"Run {meta['started']} ({meta['mode']}, {meta['duration_s']:.0f} s): {m['cpu']}, "
        f"{m['cores']} cores, Python {m['python']}, websocket-client {m['websocket_client']}, "
        f"commit {m['git_commit']}{' (package modified)' if m['git_dirty_package'] else ''}; "
        f"other processes' CPU before/after: {busy[0]}% / {busy[1]}%.",
        "",
    ]
    tp = results.get("throughput")
    if tp and "error" in tp:
        lines += ["### Throughput", "", f"error: {tp['error']}", ""]
    elif tp:
        lines += [
            "### Throughput (simulator flood, loopback; ceilings in frames/s per connection, clients in unique updates/s)",
            "",
            "| delivery | conns | reader | frames/s per conn | unique updates/s | frames per update | CPU s per 100k |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for r in tp["rows"]:
            label = throughput.LABELS[r["reader"]] + (" (again)" if r.get("repeat") else "")
            if "error" in r:
                lines.append(
                    f"| {r['delivery']} | {r['conns']} | {label} | error: {r['error'].splitlines()[0][:60]} | | | |"
                )
                continue
            per_conn = r.get("frames_per_conn_mean")
            if per_conn is None and r.get("frames_per_s") is not None:
                per_conn = r["frames_per_s"] / r["conns"]
            cpu = r.get("cpu_s_per_100k", r.get("cpu_s_per_100k_frames"))
            lines.append(
                f"| {r['delivery']} | {r['conns']} | {label} | {_f(per_conn)} | {_f(r.get('unique_per_s'))} "
                f"| {_f(r.get('frames_per_unique'), 2)} | {_f(cpu, 2)} |"
            )
        lines += [
            "",
            "| delivery | conns | source/conn | bare/conn | minimal pipeline | ours recv_many | ours recv | TS SDK | ours / TS | ours / minimal | recv_many / bare | CPU s/100k ours | CPU s/100k TS |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in tp["summary"]:
            lines.append(
                f"| {s['delivery']} | {s['conns']} | {_f(s.get('source_per_conn'))} | {_f(s['bare_per_conn'])} "
                f"| {_f(s.get('minimal'))} | {_f(s['ours_recv_many'])} | {_f(s['ours_recv'])} | {_f(s['ts_sdk'])} "
                f"| {_f(s['ratio_ours_vs_ts'], 2)} | {_f(s.get('ratio_ours_vs_minimal'), 2)} "
                f"| {_f(s['ratio_recv_many_vs_bare'], 2)} | {_f(s.get('cpu_per_100k_ours'), 2)} "
                f"| {_f(s.get('cpu_per_100k_ts'), 2)} |"
            )
        lines.append("")
    lat = results.get("latency")
    if isinstance(lat, dict):
        lines += ["### Latency", "", f"error: {lat['error']}", ""]
    elif lat:
        first = next((r for r in lat if "error" not in r), None)
        desc = f"{first['rate_hz']:,.0f} updates/s, {first['conns']} connections" if first else ""
        lines += [
            f"### Latency ({desc}; simulator timestamp -> recv() returns, ms)",
            "",
            "| scenario | p50 | p90 | p99 | p99.9 | max | updates | updates/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in lat:
            if "error" in r:
                lines.append(
                    f"| {r['scenario']} | error: {r['error'].splitlines()[0][:60]} | | | | | | |"
                )
                continue
            q = r["latency_ms"]
            lines.append(
                f"| {r['scenario']} | {q['p50']:.3f} | {q['p90']:.3f} | {q['p99']:.3f} | {q['p99.9']:.3f} "
                f"| {q['max']:.3f} | {q['n']:,} | {r['updates_per_s']:,.0f} |"
            )
        lines.append("")
    ts = results.get("ts_sdk")
    if ts:
        lines += [f"TypeScript SDK: {ts}", ""]
    cost = results.get("cost")
    if cost:
        if "error" in cost:
            lines += ["### Cost", "", f"error: {cost['error']}", ""]
        else:
            lines += [
                f"### Cost ({cost['conns']} connections, {cost['delivery']}, {cost['seconds']:.0f} s flood, recv_many)",
                "",
                "| unique updates/s | CPU s per 100k updates | CPU share | RSS peak MiB | RSS warm MiB | RSS steady MiB | growth MiB | flat | threads max/last | dedup cache max | output queue max | inbound queue max (batches) |",
                "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
                f"| {_f(cost['unique_per_s'])} | {_f(cost['cpu_s_per_100k'], 2)} | {_f(cost['cpu_share'], 2)} "
                f"| {cost['rss_peak_mb']:.1f} | {cost['rss_warm_mb']:.1f} | {cost['rss_steady_mb']:.1f} "
                f"| {cost['rss_growth_mb']:+.1f} | {'yes' if cost['flat'] else 'NO'} "
                f"| {cost['threads_max']}/{cost['threads_last']} "
                f"| {cost['dedup_cache_max']:,} | {cost['queue_depth_max']:,} "
                f"| {cost['inbound_depth_max']:,} |",
                "",
            ]
    lines += _relay_tables(results.get("relay"))
    dec = results.get("decode")
    if dec:
        lines += [
            "### Decode micro-benchmarks (us per operation, best of repeats)",
            "",
            "| operation | us/op |",
            "|---|---:|",
        ]
        if "error" in dec:
            lines.append(f"| error: {dec['error']} | |")
        else:
            lines += [f"| {name} | {us:.2f} |" for name, us in dec.items()]
        lines.append("")
    tg = results.get("targets")
    if tg:
        lines += ["### Targets", "", "| target | measured | target | met |", "|---|---:|---:|---|"]
        for t in tg:
            value = (
                "-"
                if t["value"] is None
                else f"{t['value']:.2f}{(' ' + t['unit']) if t['unit'] else ''}"
            )
            met = {True: "yes", False: "**no**", None: "n/a"}[t["ok"]]
            lines.append(f"| {t['target']} | {value} | {t['op']} {t['bound']:g} | {met} |")
        lines.append("")
    return "\n".join(lines)


def _relay_tables(rl: dict[str, Any] | None) -> list[str]:
    """The relay section: Redis memory, throughput into Redis, latency it adds."""
    if not rl:
        return []
    lines = ["### Relay through Redis Streams", ""]
    mem = rl.get("memory")
    if isinstance(mem, dict) and "streams" in mem:
        lines += ["| stream of | frame bytes | Redis MB per million updates |", "|---|---:|---:|"]
        lines += [
            f"| {m['shape']} | {m['frame_bytes_mean']:.0f} | {m['mb_per_million']:.0f} |"
            for m in mem["streams"]
        ]
        lines.append("")
    tp = rl.get("throughput")
    if isinstance(tp, list):
        lines += [
            "| conns | appended into Redis /s | direct client unique/s | a consumer reads /s | dropped |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in tp:
            if "error" in r:
                lines.append(f"| {r['conns']} | error: {str(r['error'])[:60]} | | | |")
                continue
            lines.append(
                f"| {r['conns']} | {_f(r.get('appended_per_s'))} "
                f"| {_f(r.get('direct', {}).get('unique_per_s'))} "
                f"| {_f(r.get('consumer_read', {}).get('read_per_s'))} | {_f(r.get('dropped'))} |"
            )
        lines.append("")
    lat = rl.get("latency")
    if isinstance(lat, list):
        lines += [
            "| consumers | through the relay p50 / p99 ms | direct client p50 / p99 ms |",
            "|---:|---:|---:|",
        ]
        for r in lat:
            if "error" in r:
                lines.append(f"| {r['consumers']} | error: {str(r['error'])[:60]} | |")
                continue
            q, d = r["latency_ms"], r["direct"]["latency_ms"]
            lines.append(
                f"| {r['consumers']} | {q['p50']:.3f} / {q['p99']:.3f} | {d['p50']:.3f} / {d['p99']:.3f} |"
            )
        lines.append("")
    return lines


def update_readme(text: str) -> None:
    try:
        readme = README.read_text()
    except OSError:
        return
    if _START not in readme or _END not in readme:
        return
    head, rest = readme.split(_START, 1)
    _, tail = rest.split(_END, 1)
    README.write_text(f"{head}{_START}\n\n{text}\n\n{_END}{tail}")


# -- main -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 min)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections ({', '.join(SECTIONS)})",
    )
    parser.add_argument("--no-ts", action="store_true", help="skip the TypeScript SDK comparison")
    parser.add_argument("--ts-sdk-version", default="latest", help="npm version of the TS SDK")
    parser.add_argument(
        "--ts-delayed", action="store_true", help="also the TS SDK with one connection delayed"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where results go (default benchmarks/results, or benchmarks/results/quick)",
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="do not update benchmarks/README.md"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only print the tables of an earlier run's latest.json (and update the README)",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        text = tables(json.loads(args.render.read_text()))
        print(text)
        if not args.no_readme:
            update_readme(text)
        return 0
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.out is None:  # a smoke run never replaces the published figures
        args.out = RESULTS_DIR / "quick" if args.quick else RESULTS_DIR
    settings = settings_for(args.quick)
    if args.ts_delayed:
        settings["latency"] = replace(settings["latency"], ts_delayed=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": "quick" if args.quick else "full",
            "machine": machine(),
            "settings": {k: (v if isinstance(v, dict) else asdict(v)) for k, v in settings.items()},
        }
    }
    load = results["meta"]["load_before"] = background_load()
    if load.get("busy_cpu_percent", 0) > 20:
        log(f"WARNING: other processes use {load['busy_cpu_percent']}% CPU: figures will suffer")
        for b in load["busy_processes"][:3]:
            log(f"  {b['cpu_percent']:.0f}%  {b['cmd']}")
    failed = False
    ts: ts_sdk.TsSdk | None = None
    if not args.no_ts and {"throughput", "latency"} & set(sections):
        prepared = ts_sdk.prepare(args.ts_sdk_version)
        if isinstance(prepared, str):
            results["ts_sdk"] = prepared
            log(f"TypeScript SDK: {prepared}")
        else:
            ts = prepared
            results["ts_sdk"] = f"{ts_sdk.PACKAGE} {ts.version} on Node.js {ts.node_version}"
            log(f"TypeScript SDK: {results['ts_sdk']}")
    elif args.no_ts:
        results["ts_sdk"] = "skipped (--no-ts)"

    for section in SECTIONS:
        if section not in sections:
            continue
        log(f"== {section}")
        try:
            if section == "decode":
                results["decode"] = run_decode(**settings["decode"])
            elif section == "throughput":
                tp = throughput.run(settings["throughput"], ts, log)
                tp["summary"] = throughput.summarize(tp["rows"])
                results["throughput"] = tp
            elif section == "latency":
                results["latency"] = latency.run(settings["latency"], ts, log)
            elif section == "cost":
                results["cost"] = memory.run(settings["cost"], log)
            elif section == "relay":
                results["relay"] = relay.run(settings["relay"], log)
        except Exception as exc:  # one broken section must not lose the others' figures
            failed = True
            log(f"  {section} failed: {type(exc).__name__}: {exc}")
            if not isinstance(exc, BenchError):
                traceback.print_exc()
            results[section] = {"error": f"{type(exc).__name__}: {exc}"}

    results["meta"]["duration_s"] = time.monotonic() - started
    results["meta"]["load_after"] = background_load()
    results["targets"] = targets(results)
    text = tables(results)
    print()
    print(text)

    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        import charts

        title = (
            f"pylazer_sync benchmarks, {results['meta']['started']}, "
            f"{results['meta']['machine']['cores']} cores"
        )
        if "rows" in results.get("throughput", {}):
            charts.throughput_chart(
                results["throughput"]["rows"], args.out / "throughput.png", title
            )
            written.append(args.out / "throughput.png")
        if isinstance(results.get("latency"), list):
            charts.latency_chart(results["latency"], args.out / "latency.png", title)
            written.append(args.out / "latency.png")
    except ImportError as exc:
        log(f"charts skipped: {exc} (pip install 'pylazer-sync[bench]')")
    # The raw latency samples are for the histogram only: keep the JSON small.
    for row in results.get("latency", []) if isinstance(results.get("latency"), list) else []:
        row.pop("samples_ms", None)
    relay_latency = results.get("relay", {}).get("latency")
    for row in relay_latency if isinstance(relay_latency, list) else []:
        row.pop("samples_ms", None)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    written.insert(0, args.out / "latest.json")
    complete = not args.quick and set(sections) == set(SECTIONS)
    if not args.no_readme and args.out == RESULTS_DIR and complete:
        update_readme(text)
        written.append(README)
    log(
        "wrote "
        + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in written)
    )
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
