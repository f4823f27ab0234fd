"""DataFrames and jsonl recordings (pylazer_sync.frames) on updates from a real simulator."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import pandas as pd
import pytest
from cli_support import ROOT

import pylazer_sync as pl
from pylazer_sync import frames
from pylazer_sync.simulator import Simulator

PROPERTIES = [
    "price",
    "bestBidPrice",
    "bestAskPrice",
    "exponent",
    "confidence",
    "publisherCount",
    "marketSession",
    "feedUpdateTimestamp",
]
FEEDS = [1, 2, 6]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(seed=21) as sim:
        yield sim


def collect(sim: Simulator, count: int, **subscription: object) -> list[pl.StreamUpdate]:
    """``count`` updates of one subscription, in arrival order (bounded wait)."""
    with pl.LazerClient("t", endpoints=[sim.url], num_connections=2) as client:
        client.subscribe(
            price_feed_ids=FEEDS,
            properties=PROPERTIES,
            channel="fixed_rate@50ms",
            **subscription,  # type: ignore[arg-type]
        )
        updates: list[pl.StreamUpdate] = []
        while len(updates) < count:
            message = client.recv(timeout=20.0)
            if isinstance(message, pl.StreamUpdate):
                updates.append(message)
        return updates


DELIVERIES = {
    "json, parsed and three envelopes": {"formats": ["solana", "evm", "leEcdsa"]},
    "binary, JSON envelope and two envelopes": {
        "formats": ["evm", "leUnsigned"],
        "delivery_format": "binary",
    },
    "binary, signed payload only": {
        "formats": ["leEcdsa", "solana"],
        "delivery_format": "binary",
        "parsed": False,
    },
    "json, parsed only": {},
}


@pytest.fixture(scope="module")
def recorded(sim: Simulator) -> dict[str, list[pl.StreamUpdate]]:
    return {name: collect(sim, 4, **options) for name, options in DELIVERIES.items()}


# -- jsonl -----------------------------------------------------------------------------


@pytest.mark.parametrize("delivery", list(DELIVERIES))
def test_jsonl_round_trip_gives_equal_typed_updates(
    recorded: dict[str, list[pl.StreamUpdate]], delivery: str, tmp_path: object
) -> None:
    updates = recorded[delivery]
    path = f"{tmp_path}/recording.jsonl"
    assert frames.write_jsonl([pl.Subscribed(1), *updates], path) == len(updates)
    back = list(frames.read_jsonl(path))
    assert back == updates
    for original, copy in zip(updates, back, strict=True):
        assert copy.parsed == original.parsed  # None stays None
        assert copy.payload is not None and copy.feeds == original.feeds
        for attr in ("solana", "evm", "le_ecdsa", "le_unsigned"):
            assert getattr(copy, attr) == getattr(original, attr)


def test_jsonl_records_say_what_they_hold(recorded: dict[str, list[pl.StreamUpdate]]) -> None:
    update = recorded["json, parsed and three envelopes"][0]
    obj = frames.update_to_jsonl_obj(update)
    assert json.loads(json.dumps(obj)) == obj  # plain JSON
    assert obj["subscription_id"] == update.subscription_id
    assert obj["timestamp_us"] == update.timestamp_us
    assert obj["parsed"] is True
    assert update.solana is not None and update.evm is not None and update.le_ecdsa
    assert bytes.fromhex(obj["solana"]) == update.solana.encode()
    assert bytes.fromhex(obj["evm"]) == update.evm.encode()
    assert bytes.fromhex(obj["leEcdsa"]) == update.le_ecdsa.encode()
    assert "leUnsigned" not in obj
    for feed, record in zip(update.feeds, obj["feeds"], strict=True):
        assert record["feed_id"] == feed.feed_id
        assert record["price"] == feed.price and isinstance(record["price"], int)
        assert record["exponent"] == feed.exponent
        assert record["market_session"] == feed.market_session
        # Exact decimal strings in plain notation, equal to FeedUpdate.real().
        for name, text in record["real"].items():
            assert "E" not in text
            assert Decimal(text) == feed.real(name)
        assert set(record["real"]) == {"price", "best_bid_price", "best_ask_price", "confidence"}
    binary = frames.update_to_jsonl_obj(recorded["binary, signed payload only"][0])
    assert binary["parsed"] is False and binary["channel_id"] == 2  # fixed_rate@50ms
    # JSON delivery: the parsed object has no channel, the signed payloads do.
    assert update.payload is not None and update.payload.channel_id is None
    assert obj["channel_id"] == 2
    assert "channel_id" not in frames.update_to_jsonl_obj(recorded["json, parsed only"][0])


def test_jsonl_real_values_stay_plain_for_tiny_and_huge_exponents() -> None:
    feed = pl.FeedUpdate(7, price=12, exponent=-12, best_bid_price=5, best_ask_price=9)
    update = pl.StreamUpdate(3, pl.Payload(1, [feed]))
    record = frames.update_to_jsonl_obj(update)["feeds"][0]["real"]
    assert record["price"] == "0.000000000012"
    big = pl.StreamUpdate(3, pl.Payload(1, [pl.FeedUpdate(7, price=12, exponent=5)]))
    assert frames.update_to_jsonl_obj(big)["feeds"][0]["real"]["price"] == "1200000"
    assert frames.update_from_jsonl_obj(frames.update_to_jsonl_obj(update)) == update


def test_read_jsonl_skips_blank_lines_and_names_the_bad_line(
    recorded: dict[str, list[pl.StreamUpdate]],
) -> None:
    good = json.dumps(frames.update_to_jsonl_obj(recorded["json, parsed only"][0]))
    assert len(list(frames.read_jsonl(io.StringIO(f"\n{good}\n\n{good}\n")))) == 2
    cases = {
        "{not json": "line 2",
        json.dumps({"timestamp_us": 1, "feeds": []}): "subscription_id",
        json.dumps({"subscription_id": 1, "parsed": False, "solana": "zz"}): "hex",
        json.dumps({"subscription_id": 1, "timestamp_us": 1, "feeds": [{"price": 1}]}): "feed_id",
        json.dumps(
            {"subscription_id": 1, "timestamp_us": 1, "feeds": [{"feed_id": 1, "price": "x"}]}
        ): "price",
    }
    for line, needle in cases.items():
        with pytest.raises(pl.ProtocolError, match=needle) as exc:
            list(frames.read_jsonl(io.StringIO(f"{good}\n{line}\n")))
        assert "line 2" in str(exc.value)


def test_a_truncated_jsonl_recording_loads_with_on_error_skip(
    recorded: dict[str, list[pl.StreamUpdate]], tmp_path: object
) -> None:
    updates = recorded["json, parsed and three envelopes"]
    path = f"{tmp_path}/cut.jsonl"
    frames.write_jsonl(updates, path)
    with open(path, "rb+") as f:  # a crash in the middle of the last line
        f.truncate(f.seek(0, 2) - 40)
    with pytest.raises(pl.ProtocolError, match=r"cut\.jsonl, line 4: .*on_error='skip'"):
        frames.updates_frame(frames.read_jsonl(path))
    reader = frames.read_jsonl(path, on_error="skip")
    df = frames.updates_frame(reader)
    assert len(df) == 3 * len(FEEDS)
    assert reader.skipped == 1 and reader.errors[0].startswith(f"{path}, line 4: ")
    assert list(frames.read_recording(path, on_error="skip")) == updates[:3]
    with pytest.raises(pl.InvalidRequestError, match="on_error"):
        frames.read_jsonl(path, on_error="ignore")  # type: ignore[arg-type]


def test_frames_imports_without_pandas() -> None:
    code = (
        "import sys; sys.modules['pandas'] = None\n"  # makes 'import pandas' fail
        "import pylazer_sync.frames as f\n"
        "try:\n"
        "    f.updates_frame([])\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingDependencyError")
    assert "pip install 'pylazer-sync[pandas]'" in result.stdout


# -- DataFrames ----------------------------------------------------------------------------


def test_updates_frame_has_one_row_per_feed_update_with_exact_values(
    recorded: dict[str, list[pl.StreamUpdate]],
) -> None:
    updates = recorded["json, parsed and three envelopes"]
    df = frames.updates_frame(updates, symbols={1: "Crypto.BTC/USD", 2: "Crypto.ETH/USD"})
    assert len(df) == sum(len(u.feeds) for u in updates) == 4 * len(FEEDS)
    assert list(df.columns[:4]) == ["timestamp", "subscription_id", "feed_id", "symbol"]
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert str(df["exponent"].dtype) == "Int64"
    rows = iter(df.itertuples(index=False))
    for update in updates:
        assert update.timestamp_us is not None
        when = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            microseconds=update.timestamp_us
        )
        for feed in update.feeds:
            row = next(rows)
            assert row.timestamp == when
            assert row.feed_id == feed.feed_id
            assert row.price == feed.real("price") and isinstance(row.price, Decimal)
            assert row.best_ask_price == feed.real("best_ask_price")
            assert row.publisher_count == feed.publisher_count
            assert row.market_session == feed.market_session
    symbols = df.set_index("feed_id")["symbol"]
    assert symbols[1].iloc[0] == "Crypto.BTC/USD"
    assert pd.isna(symbols[6].iloc[0])  # not in the mapping


def test_updates_frame_floats_and_symbols_from_the_catalogue(
    sim: Simulator, recorded: dict[str, list[pl.StreamUpdate]]
) -> None:
    updates = recorded["binary, signed payload only"]
    with pl.LazerClient("t", endpoints=[sim.url], rest_url=sim.rest_url) as client:
        catalogue = client.symbols()
    df = frames.updates_frame(updates, symbols=catalogue, numbers="float")
    assert df["price"].dtype == "float64"
    assert set(df["symbol"]) == {"Crypto.BTC/USD", "Crypto.ETH/USD", "Crypto.SOL/USD"}
    expected = [float(f.real("price") or 0) for u in updates for f in u.feeds]
    assert df["price"].tolist() == pytest.approx(expected, rel=1e-12)
    assert (df["best_bid_price"] <= df["best_ask_price"]).all()


def test_updates_frame_edge_cases() -> None:
    empty = frames.updates_frame([])
    assert list(empty.columns) == ["timestamp", "subscription_id", "feed_id", "symbol"]
    assert len(empty) == 0
    no_exponent = pl.StreamUpdate(1, pl.Payload(5, [pl.FeedUpdate(3, price=12345)]))
    df = frames.updates_frame([no_exponent, pl.Subscribed(1)])
    assert len(df) == 1 and df["price"].iloc[0] == 12345  # the mantissa, unscaled
    with pytest.raises(pl.InvalidRequestError, match="numbers"):
        frames.updates_frame([], numbers="int")  # type: ignore[arg-type]


def test_latest_frame_matches_the_snapshot(sim: Simulator) -> None:
    with pl.LazerClient("t", endpoints=[sim.url], num_connections=1) as client:
        client.subscribe(price_feed_ids=FEEDS, properties=PROPERTIES, channel="fixed_rate@50ms")
        seen: set[int] = set()
        while seen != set(FEEDS):
            message = client.recv(timeout=20.0)
            if isinstance(message, pl.StreamUpdate):
                seen.update(f.feed_id for f in message.feeds)
    # Closed, the client's snapshot stands still (and can still be read), so the frame
    # can be compared with it exactly.
    snapshot = client.latest_prices()
    df = frames.latest_frame(client, symbols={6: "Crypto.SOL/USD"}, numbers="float")
    assert df.index.name == "feed_id" and sorted(df.index) == FEEDS
    for feed_id, latest in snapshot.items():
        row = df.loc[feed_id]
        assert row["price"] == pytest.approx(float(latest.real("price") or 0), rel=1e-12)
        assert row["timestamp"] == pd.Timestamp(latest.timestamp_us, unit="us", tz="UTC")
        assert str(row["received_at"].tz) == "UTC"
    assert df.loc[6, "symbol"] == "Crypto.SOL/USD"
