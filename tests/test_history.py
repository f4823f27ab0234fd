"""History into DataFrames, then live (issue 20, part 2): ``pl.history`` over the history
service's OHLC bars (paged, retried, exact decimals), ``frames.live_frame`` (history
extended by the stream), ``pylazer-sync history``, against simulators whose bars come
from their own updates, so history and live must agree to the last digit."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

import pylazer_sync as pl
from pylazer_sync import frames, ohlc
from pylazer_sync.simulator import Simulator
from tests.cli_support import cli
from tests.client_support import FAST_BACKOFF

UTC = dt.timezone.utc
PERIOD_US = 200_000  # fixed_rate@200ms
TICKS_PER_5S = 5_000_000 // PERIOD_US


@pytest.fixture(scope="module")
def sim() -> Simulator:
    with Simulator(seed=20) as s:
        yield s  # type: ignore[misc]


@pytest.fixture()
def client(sim: Simulator) -> pl.LazerClient:
    with pl.LazerClient(endpoints=[sim.url], num_connections=1, backoff=FAST_BACKOFF) as c:
        yield c  # type: ignore[misc]


# -- decoding ------------------------------------------------------------------------------


def test_udf_answers_decode_exactly() -> None:
    # The TradingView UDF shape the Pyth docs describe (t in seconds, prices as numbers).
    body = b'{"s":"ok","t":[1637502060,1637502180],"o":[58905.5,58907.5],"h":[58908,58908],"l":[58905.5,58888.5],"c":[58907.5,58889.00000001],"v":[5.365,2.288]}'
    first, second = ohlc.decode_bars(body)
    assert first == ohlc.Bar(
        1637502060, Decimal("58905.5"), Decimal(58908), Decimal("58905.5"), Decimal("58907.5"),
        Decimal("5.365"),
    )  # fmt: skip
    assert second.close == Decimal("58889.00000001")  # no float on the way
    assert ohlc.decode_bars(b'{"s":"no_data","nextTime":1637500000}') == []
    with pytest.raises(pl.InvalidRequestError, match="Symbol not found"):
        ohlc.decode_bars(b'{"s":"error","errmsg":"Symbol not found"}')
    for broken in (b'{"s":"ok","t":[1],"o":[],"h":[],"l":[],"c":[]}', b"[]", b"<html>"):
        with pytest.raises(pl.ProtocolError, match="history"):
            ohlc.decode_bars(broken)


def test_resolutions_and_bar_alignment() -> None:
    assert ohlc.resolution("1m").wire == "1" and ohlc.resolution("60").name == "1h"
    assert ohlc.resolution("D").name == "1d" and ohlc.resolution("1M").wire == "M"
    with pytest.raises(pl.InvalidRequestError, match="resolution"):
        ohlc.resolution("7m")
    t = int(dt.datetime(2026, 3, 18, 13, 47, 12, tzinfo=UTC).timestamp())  # a Wednesday
    at = dict.fromkeys(["5s", "1h", "1d", "1w", "1M"], 0)
    for name in at:
        at[name] = ohlc.bar_start(t, ohlc.resolution(name))
    stamp = {k: dt.datetime.fromtimestamp(v, UTC) for k, v in at.items()}
    assert stamp["5s"] == dt.datetime(2026, 3, 18, 13, 47, 10, tzinfo=UTC)
    assert stamp["1h"] == dt.datetime(2026, 3, 18, 13, tzinfo=UTC)
    assert stamp["1d"] == dt.datetime(2026, 3, 18, tzinfo=UTC)
    assert stamp["1w"] == dt.datetime(2026, 3, 16, tzinfo=UTC)  # Monday
    assert stamp["1M"] == dt.datetime(2026, 3, 1, tzinfo=UTC)
    december = int(dt.datetime(2026, 12, 1, tzinfo=UTC).timestamp())
    assert ohlc.next_bar(december, ohlc.resolution("1M")) == int(
        dt.datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    )


# -- pl.history against the simulator ------------------------------------------------


def _collect(client: pl.LazerClient, seconds: float) -> list[pl.StreamUpdate]:
    deadline = time.monotonic() + seconds
    updates: list[pl.StreamUpdate] = []
    while (remaining := deadline - time.monotonic()) > 0:
        updates += [
            m for m in client.recv_many(timeout=remaining) if isinstance(m, pl.StreamUpdate)
        ]
    return updates


def test_history_bars_agree_exactly_with_the_live_stream(client: pl.LazerClient) -> None:
    client.subscribe(
        price_feed_ids=[1, 2], properties=["price", "exponent"], channel="fixed_rate@200ms"
    )
    updates = _collect(client, 12.0)
    # The bars the stream's updates make, with the ticks each holds.
    live: dict[tuple[int, int], list[tuple[int, Decimal]]] = defaultdict(list)
    for update in updates:
        assert update.timestamp_us is not None
        for feed in update.feeds:
            price = feed.real("price")
            if price is not None:
                live[(feed.feed_id, update.timestamp_us // 5_000_000 * 5)].append(
                    (update.timestamp_us, price)
                )
    first_us = min(u.timestamp_us or 0 for u in updates)
    last_us = max(u.timestamp_us or 0 for u in updates)
    compared = 0
    for feed_id, symbol in ((1, "Crypto.BTC/USD"), (2, "Crypto.ETH/USD")):
        bars = pl.history(
            feed_id if feed_id == 1 else symbol, first_us, last_us, "5s",
            channel="fixed_rate@200ms", client=client,
        )  # fmt: skip
        assert bars.attrs["symbol"] == symbol and bars.index.tz is not None
        for time_, row in bars.iterrows():
            ticks = sorted(live.get((feed_id, int(time_.timestamp())), []))
            if len(ticks) != TICKS_PER_5S:
                continue  # a bar the stream only saw part of (the first, the last)
            prices = [p for _, p in ticks]
            assert (row.open, row.high, row.low, row.close) == (
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
            ), time_
            assert all(isinstance(v, Decimal) for v in row)
            compared += 1
    assert compared >= 2, f"only {compared} complete bars in 12 s of updates"


def test_long_ranges_are_paged_with_a_progress_bar(
    client: pl.LazerClient, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    end = (time.time_ns() // 1000) // 60_000_000 * 60_000_000 - 60_000_000
    start = end - 2 * 3_600_000_000
    path = "/v1/fixed_rate@1000ms/history"
    before = sim.rest_requests().get(path, 0)
    paged = pl.history(
        "Crypto.SOL/USD", start, end, "1m", channel="fixed_rate@1000ms", client=client,
        page_bars=30, progress=True, numbers="float",
    )  # fmt: skip
    assert sim.rest_requests()[path] - before == 5  # 121 bars, 30 per page
    assert "history Crypto.SOL/USD" in capsys.readouterr().err
    whole = pl.history(
        "Crypto.SOL/USD", start, end, "1m", channel="fixed_rate@1000ms", client=client,
        numbers="float", progress=False,
    )  # fmt: skip
    pd.testing.assert_frame_equal(paged, whole)
    assert (
        len(whole) == 121
        and (whole.index.to_series().diff().dropna() == pd.Timedelta("1min")).all()
    )
    assert list(whole.columns) == ["open", "high", "low", "close"]  # no volume in the simulator
    assert (whole.dtypes == "float64").all()
    assert whole["close"].resample("15min").ohlc().shape[0] >= 8  # plain pandas works on floats
    assert (
        (whole.low <= whole.open) & (whole.open <= whole.high) & (whole.low <= whole.close)
    ).all()


def test_history_failure_paths(client: pl.LazerClient, sim: Simulator) -> None:
    now = dt.datetime.now(UTC)
    with pytest.raises(pl.InvalidRequestError, match="424242 is not in the catalogue"):
        pl.history(424242, dt.timedelta(minutes=5), client=client)
    with pytest.raises(pl.InvalidRequestError, match="unknown symbol"):
        pl.history("Crypto.NOPE/USD", dt.timedelta(minutes=5), client=client)
    with pytest.raises(pl.InvalidRequestError, match="no time zone"):
        pl.history("Crypto.BTC/USD", dt.datetime.now(), client=client)
    with pytest.raises(pl.InvalidRequestError, match="end is before start"):
        pl.history("Crypto.BTC/USD", now, now - dt.timedelta(hours=1), client=client)
    rest = pl.RestClient(None, history_url=sim.rest_url, retries=1, backoff=FAST_BACKOFF)
    sim.rest_outage(503, paths=["/v1/fixed_rate@200ms/history"])
    try:
        with pytest.raises(pl.RestError, match="HTTP 503") as info:
            pl.history("Crypto.BTC/USD", dt.timedelta(minutes=5), client=rest)
    finally:
        sim.rest_outage(None)
    assert info.value.status == 503
    assert sim.rest_requests()["/v1/fixed_rate@200ms/history"] >= 2  # retried


# -- live_frame ----------------------------------------------------------------------------


def test_live_frame_starts_from_history_and_goes_on_exactly(client: pl.LazerClient) -> None:
    live = frames.live_frame(
        client, ["Crypto.BTC/USD", 6], history=dt.timedelta(seconds=30), resolution="5s",
        channel="fixed_rate@200ms",
    )  # fmt: skip
    start = live.frame
    assert set(start.index.get_level_values("symbol")) == {"Crypto.BTC/USD", "Crypto.SOL/USD"}
    assert (start["source"] == "history").all() and len(start.loc["Crypto.BTC/USD"]) >= 5
    deadline = time.monotonic() + 60
    while True:  # until two bars past the first live one are complete
        frame = live.update(timeout=0.5)
        btc = frame.loc["Crypto.BTC/USD"]
        done = btc[(btc["source"] == "live") & (btc["updates"] == TICKS_PER_5S)]
        if len(done) >= 2 and "partial" not in set(frame["source"]):
            break
        assert time.monotonic() < deadline, frame.tail(8)
    live.close()
    for symbol in ("Crypto.BTC/USD", "Crypto.SOL/USD"):
        ours = frame.loc[symbol]
        first, last = ours.index[0], ours.index[-2]  # the last bar is still going on
        theirs = pl.history(
            symbol, first.to_pydatetime(), last.to_pydatetime(), "5s", client=client
        )
        # history bars, the repaired first live bar, and complete live bars: all equal.
        kept = ours[(ours["source"] == "history") | (ours["updates"] == TICKS_PER_5S)]
        kept = kept.loc[kept.index <= last]
        assert len(kept) >= len(start.loc[symbol]) + 1
        pd.testing.assert_frame_equal(
            kept[["open", "high", "low", "close"]], theirs.loc[kept.index], check_freq=False
        )


def test_live_frame_refuses_a_feed_unknown_to_the_catalogue(client: pl.LazerClient) -> None:
    with pytest.raises(pl.InvalidRequestError, match="not in the catalogue"):
        frames.live_frame(client, [1, "Crypto.NOPE/USD"], resolution="1m")


# -- pylazer-sync history --------------------------------------------------------------


def test_cli_history_writes_csv_and_parquet(sim: Simulator, tmp_path: Path) -> None:
    end = (time.time_ns() // 1_000_000_000) // 60 * 60 - 60
    common = ["--endpoint", sim.url, "--start", "30m", "--end", str(end * 1_000_000)]
    expected = pl.history(
        "Crypto.ETH/USD", dt.timedelta(minutes=30), end * 1_000_000, "1m",
        client=pl.RestClient(None, history_url=sim.rest_url),
    )  # fmt: skip
    csv = tmp_path / "bars.csv"
    result = cli("history", "Crypto.ETH/USD", *common, "--output", str(csv))
    assert result.returncode == 0, result.stderr
    assert "31 bars of Crypto.ETH/USD (1m, fixed_rate@200ms) from " in result.stderr
    read = pd.read_csv(csv, index_col="time", parse_dates=True, dtype=str)
    assert [Decimal(v) for v in read["close"]] == list(expected["close"])
    parquet = tmp_path / "bars.parquet"
    result = cli("history", "2", *common, "--output", str(parquet), "--resolution", "5m")
    assert result.returncode == 0, result.stderr
    back = pd.read_parquet(parquet)
    five = pl.history(
        2, dt.timedelta(minutes=30), end * 1_000_000, "5m",
        client=pl.RestClient(None, history_url=sim.rest_url),
    )  # fmt: skip
    assert back.index.name == "time" and list(back.index) == list(five.index)
    # Exact (Parquet decimals); the last bar may still be going on: left out.
    assert list(back["close"])[:-1] == list(five["close"])[:-1]
    result = cli("history", "424242", *common)
    assert result.returncode == 2 and "not in the catalogue" in result.stderr
    result = cli("history", "Crypto.ETH/USD", *common, "--output", str(tmp_path / "bars.xlsx"))
    assert result.returncode == 2 and ".csv or .parquet" in result.stderr
