"""The two pictures of a run: a throughput bar chart and a latency histogram (PNG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
from throughput import LABELS, find

# Ceilings are frames/s per connection; the clients are unique updates/s delivered.
_BARS = [
    ("bare", "frames_per_conn_mean", "#b0b0b0"),
    ("buffered", "frames_per_conn_mean", "#808080"),
    ("transport", "frames_per_conn_mean", "#505050"),
    ("recv_many", "unique_per_s", "#1f77b4"),
    ("recv", "unique_per_s", "#6baed6"),
    ("ts_sdk", "unique_per_s", "#ff7f0e"),
]


def throughput_chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    deliveries = [d for d in ("json", "binary") if any(r["delivery"] == d for r in rows)]
    fig, axes = plt.subplots(
        1, len(deliveries), figsize=(6.5 * len(deliveries), 4.6), squeeze=False
    )
    for ax, delivery in zip(axes[0], deliveries, strict=True):
        conns = sorted({r["conns"] for r in rows if r["delivery"] == delivery})
        width = 0.8 / len(_BARS)
        for b, (reader, field, color) in enumerate(_BARS):
            xs, ys = [], []
            for i, n in enumerate(conns):
                value = find(rows, reader, delivery, n).get(field)
                if value is not None:
                    xs.append(i + (b - (len(_BARS) - 1) / 2) * width)
                    ys.append(value / 1000)
            label = LABELS[reader] + (" (frames/s/conn)" if field.startswith("frames") else "")
            ax.bar(xs, ys, width, label=label, color=color)
        ax.set_xticks(range(len(conns)), [f"{n} conn" for n in conns])
        ax.set_ylabel("thousands per second")
        ax.set_title(f"{delivery} delivery")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_chart(scenarios: list[dict[str, Any]], path: Path, title: str) -> None:
    usable = [s for s in scenarios if s.get("samples_ms")]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    if usable:
        low = max(1e-3, min(min(s["samples_ms"]) for s in usable))
        high = max(max(s["samples_ms"]) for s in usable)
        edges = [
            10 ** (math.log10(low) + k * (math.log10(high * 1.01) - math.log10(low)) / 80)
            for k in range(81)
        ]
        for s in usable:
            lat = s["latency_ms"]
            label = f"{s['scenario']}: p50 {lat['p50']:.3f}, p99 {lat['p99']:.3f} ms"
            ax.hist(s["samples_ms"], bins=edges, histtype="step", linewidth=1.4, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.axvline(0.3, color="grey", linestyle=":", linewidth=1)
    ax.axvline(2.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("latency, ms (simulator timestamp -> recv() / SDK handler); lines: 0.3 and 2 ms")
    ax.set_ylabel("updates")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
