"""Recordings: what the recorder sustains, bytes per million updates, seconds to load.

    python benchmarks/recording.py                 # about two minutes on a quiet 2-core machine
    python benchmarks/recording.py --rows 100000   # a quick look

The updates are the simulator's, encoded offline (no network): BTC, ETH and SOL with the
``stream`` command's default properties, at the 200 ms channel, as JSON frames with the
``parsed`` object only ("unsigned") and with Solana and EVM envelopes as well ("signed").
Each is decoded as the client decodes it (so every update carries its frame), then:

* recorder: ``ParquetRecorder.write()`` of every update, flushes and the final join
  included (updates per second, one thread);
* size: the Parquet directory and the jsonl file (``write_jsonl``), per million updates;
* load: ``read_parquet(dir)`` (decimal and float) and ``updates_frame(read_jsonl(path))``
  for ``--rows`` rows (one row per feed per update), seconds.

Prints one line per figure and a JSON object at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pylazer_sync import frames
from pylazer_sync.protocol import (
    Channel,
    DeliveryFormat,
    Format,
    JsonBinaryEncoding,
    Property,
    StreamUpdate,
    decode_frame,
)
from pylazer_sync.recording import ParquetRecorder
from pylazer_sync.simulator import Simulator
from pylazer_sync.simulator.updates import Shape, UpdateEncoder

FEEDS = (1, 2, 6)
PROPERTIES = (
    Property.PRICE, Property.BEST_BID_PRICE, Property.BEST_ASK_PRICE, Property.EXPONENT,
    Property.CONFIDENCE, Property.PUBLISHER_COUNT,
)  # fmt: skip
START_US = 1_750_000_000_000_000
PERIOD_US = 200_000


def make_updates(count: int, formats: tuple[Format, ...]) -> list[StreamUpdate]:
    sim = Simulator(seed="bench")  # its market and keys only; never started
    encoder = UpdateEncoder(sim.market, sim.signer)
    shape = Shape(
        subscription_id=1, feed_ids=FEEDS, properties=PROPERTIES, formats=formats,
        delivery_format=DeliveryFormat.JSON, json_binary_encoding=JsonBinaryEncoding.BASE64,
        parsed=True, channel=Channel.FIXED_RATE_200MS, market_sessions=None,
    )  # fmt: skip
    out = []
    for i in range(count):
        frame = encoder.frame(shape, START_US + i * PERIOD_US)
        assert isinstance(frame, str)
        update = decode_frame(frame)
        assert isinstance(update, StreamUpdate)
        out.append(update)
    return out


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if not p.name.startswith("."))


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def scenario(name: str, updates: list[StreamUpdate], work: Path, load: bool) -> dict[str, Any]:
    directory, jsonl = work / f"{name}-parquet", work / f"{name}.jsonl"
    n = len(updates)

    def record() -> None:
        with ParquetRecorder(directory, rotate_seconds=None, flush_seconds=2.0) as recorder:
            for update in updates:
                recorder.write(update)

    record_s, _ = timed(record)
    jsonl_s, _ = timed(lambda: frames.write_jsonl(updates, jsonl))
    result: dict[str, Any] = {
        "updates": n,
        "rows": n * len(FEEDS),
        "recorder_updates_per_s": round(n / record_s),
        "jsonl_writer_updates_per_s": round(n / jsonl_s),
        "parquet_bytes_per_million_updates": round(size_of(directory) * 1e6 / n),
        "jsonl_bytes_per_million_updates": round(size_of(jsonl) * 1e6 / n),
    }
    if load:
        for numbers in ("decimal", "float"):
            seconds, df = timed(lambda: frames.read_parquet(directory, numbers=numbers))  # noqa: B023
            assert len(df) == result["rows"]
            result[f"parquet_load_s_{numbers}"] = round(seconds, 2)
        seconds, df = timed(lambda: frames.updates_frame(frames.read_jsonl(jsonl)))
        assert len(df) == result["rows"]
        result["jsonl_load_s_decimal"] = round(seconds, 2)
        seconds, _ = timed(lambda: frames.read_parquet(directory, feeds=[2], numbers="float"))
        result["parquet_load_one_feed_s_float"] = round(seconds, 2)
    for key, value in result.items():
        print(f"{name:9} {key:36} {value}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to load (default: 1M)")
    parser.add_argument(
        "--signed-updates", type=int, default=50_000, help="signed updates (default: 50k)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pylazer-bench-recording-"))
    try:
        unsigned = make_updates(args.rows // len(FEEDS), ())
        results = {"unsigned": scenario("unsigned", unsigned, work, load=True)}
        del unsigned
        signed = make_updates(args.signed_updates, (Format.SOLANA, Format.EVM))
        results["signed"] = scenario("signed", signed, work, load=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
