"""Where the client's time goes under the flood: py-spy on a ``LazerClient`` reader.

``python benchmarks/profile_client.py --conns 4 [--delivery json] [--seconds 8] [--gil]``

Starts a flooding simulator and a ``recv_many`` (or ``recv``) reader in processes of
their own, samples the reader with ``py-spy record --threads`` (``--gil``: only the
thread holding the GIL, i.e. where the interpreter's one lane is spent) and prints, per
thread, the share of samples by function (self time: the innermost frame) and by
"inclusive" pylazer_sync function. The raw collapsed stacks are kept (``--raw PATH``)
for flame graphs. Needs py-spy (``pip install py-spy``) and permission to ptrace.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import PYTHON, SimProcess, python_worker

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)(?::(?P<line>\d+))?\)$")


def _where(frame: str) -> str:
    """``func (file.py)`` from py-spy's ``func (path/to/file.py:123)``."""
    m = _FRAME.match(frame)
    if m is None:
        return frame
    return f"{m['func']} ({Path(m['file']).name})"


def _thread_group(root: str) -> str:
    """The group of a thread from py-spy's root frame ``thread (0x..): NAME``."""
    name = root.partition("): ")[2] or root
    if name.startswith("pylazer-conn-"):
        return "connection readers (pylazer-conn-*)"
    if name == "pylazer-dedup":
        return "dedup thread"
    if name == "MainThread":
        return "main thread (the recv loop)"
    return name


def summarize(raw: Path, top: int = 12) -> str:
    """Per thread: total samples, self time by function, inclusive time by package function."""
    threads: dict[str, list[tuple[list[str], int]]] = collections.defaultdict(list)
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        threads[frames[0]].append((frames[1:], int(count)))
    total = sum(n for entries in threads.values() for _, n in entries)
    by_role: dict[str, list[tuple[list[str], int]]] = collections.defaultdict(list)
    for root, entries in threads.items():
        by_role[_thread_group(root)].extend(entries)
    out = [f"{raw.name}: {total} samples"]
    for role, entries in sorted(by_role.items(), key=lambda kv: -sum(n for _, n in kv[1])):
        n_role = sum(n for _, n in entries)
        leaf: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        for frames, n in entries:
            if frames:
                leaf[_where(frames[-1])] += n
            for f in {_where(f) for f in frames if "pylazer_sync" in f}:
                inclusive[f] += n
        out.append(f"\n  thread group '{role}': {n_role} samples ({100 * n_role / total:.0f}%)")
        out.append("    self time:")
        out += [f"      {100 * v / n_role:5.1f}%  {k}" for k, v in leaf.most_common(top)]
        out.append("    inclusive (pylazer_sync functions):")
        out += [f"      {100 * v / n_role:5.1f}%  {k}" for k, v in inclusive.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument("--delivery", choices=["json", "binary"], default="json")
    parser.add_argument("--reader", choices=["recv_many", "recv"], default="recv_many")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--gil", action="store_true", help="only the thread holding the GIL")
    parser.add_argument("--raw", type=Path, default=None, help="keep the collapsed stacks here")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 1
    raw = args.raw or Path(f"/tmp/pylazer-profile-{args.conns}-{args.delivery}.txt")
    with SimProcess("--flood", name="flood-simulator") as sim:
        worker_args = [
            *("--url", sim.url, "--conns", str(args.conns), "--delivery", args.delivery),
            *("--warmup", "3", "--warmup-max", "3", "--seconds", str(args.seconds + 4)),
        ]
        with python_worker("workers", args.reader, *worker_args, name="reader") as worker:
            time.sleep(4.0)  # connected, ring encoded, dedup cache full
            cmd = [spy, "record", "--pid", str(worker.pid), "--duration", str(int(args.seconds))]
            cmd += ["--rate", str(args.rate), "--threads", "--format", "raw", "-o", str(raw)]
            if args.gil:
                cmd.append("--gil")
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 30)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            result = worker.result(args.seconds + 30)
    print(
        f"reader: {args.reader}, {args.conns} connection(s), {args.delivery}: "
        f"{result.get('unique_per_s', 0):,.0f} unique/s under py-spy (it slows the target)"
    )
    print(summarize(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
