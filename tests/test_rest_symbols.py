"""The feeds catalogue (issue 18, item 3): the new location ``/v1/symbols`` with every
field of the new entries, the old ``/history/v1/symbols`` as a fallback, tolerance of
future states and fields, and the disk cache.

Decode tests use JSON shaped like the official repository's own fixtures (rewritten by
hand): ``jrpc.rs``'s future-state test, ``symbol_state.rs``'s states, the TypeScript
client test's ``SymbolResponse`` and the Rust client's ``SymbolInfo`` with its
``market_session_schedule``. The rest goes through the public API to a simulator, over
real HTTP on loopback.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import pylazer_sync as pl
from pylazer_sync.rest import FeedState, InstrumentType, decode_symbols, parse_duration_us
from pylazer_sync.simulator import Catalogue, Simulator
from pylazer_sync.simulator.market import FeedInfo
from tests.cli_support import refusing_port
from tests.client_support import FAST_BACKOFF, TOKEN

# -- decoding, from fixtures shaped like the official ones -------------------------------


def test_a_future_state_decodes_as_a_string_like_the_rust_fixture() -> None:
    # jrpc.rs: symbol_metadata_with_future_state_parses_as_unknown
    body = """[{
      "pyth_lazer_id": 1, "name": "BTCUSD", "symbol": "Crypto.BTC/USD",
      "description": "BITCOIN / US DOLLAR", "asset_type": "crypto", "exponent": -8,
      "cmc_id": null, "interval": null, "min_publishers": 3, "min_channel": "real_time",
      "state": "some_future_state", "hermes_id": null, "quote_currency": "USD"
    }]"""
    (btc,) = decode_symbols(body)
    assert btc.state == "some_future_state" and not isinstance(btc.state, FeedState)
    assert not btc.is_stable
    assert (btc.feed_id, btc.symbol, btc.exponent, btc.min_publishers) == (
        1,
        "Crypto.BTC/USD",
        -8,
        3,
    )
    assert btc.quote_currency == "USD" and btc.min_channel == "real_time"
    assert btc.cmc_id is None and btc.hermes_id is None and btc.funding_rate_interval_us is None


@pytest.mark.parametrize(
    ("wire", "state"),
    [
        ("coming_soon", FeedState.COMING_SOON),
        ("stable", FeedState.STABLE),
        ("inactive", FeedState.INACTIVE),
        ("beta", FeedState.BETA),
        ("expired", FeedState.EXPIRED),
    ],
)
def test_every_known_state_decodes_like_symbol_state_rs(wire: str, state: FeedState) -> None:
    (entry,) = decode_symbols(json.dumps([{"pyth_lazer_id": 7, "symbol": "X", "state": wire}]))
    assert entry.state is state and entry.state == wire and str(entry.state) == wire


def test_the_typescript_clients_symbol_response_decodes() -> None:
    # client.test.ts: "should make authenticated GET request to symbols endpoint"
    body = """[{"asset_type": "crypto", "description": "Bitcoin", "exponent": -8,
               "min_channel": "real_time", "min_publishers": 1, "name": "BTC/USD",
               "pyth_lazer_id": 1, "schedule": "24/7", "state": "stable", "symbol": "BTCUSD"}]"""
    (entry,) = decode_symbols(body)
    assert entry == pl.SymbolInfo(
        feed_id=1,
        name="BTC/USD",
        symbol="BTCUSD",
        description="Bitcoin",
        asset_type="crypto",
        exponent=-8,
        min_publishers=1,
        min_channel="real_time",
        state=FeedState.STABLE,
        schedule="24/7",
    )


def test_a_v1_symbols_row_with_every_new_field_decodes() -> None:
    # api_client.rs SymbolInfo: SymbolMetadata flattened, plus market_session_schedule;
    # the reference data (instrument type, sessions, corporate actions, expiration,
    # groups) as Pyth's reference-data documentation describes it.
    row = {
        "pyth_lazer_id": 922,
        "name": "BKNG",
        "symbol": "Equity.US.BKNG/USD",
        "description": "BOOKING HOLDINGS INC",
        "asset_type": "equity",
        "exponent": -5,
        "cmc_id": None,
        "funding_rate_interval": None,
        "min_publishers": 2,
        "min_channel": "fixed_rate@200ms",
        "state": "stable",
        "hermes_id": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
        "quote_currency": "USD",
        "nasdaq_symbol": "BKNG",
        "instrument_type": "spot",
        "market_session_schedule": {
            "regular": "America/New_York;0930-1600,0930-1600,0930-1600,0930-1600,0930-1600,C,C;",
            "pre_market": "America/New_York;0400-0930,0400-0930,0400-0930,0400-0930,0400-0930,C,C;",
            "post_market": None,
            "over_night": None,
        },
        "market_sessions": {
            "regular": {"min_pub": 2, "schedule": "America/New_York;0930-1600;", "state": "stable"},
            "pre_market": {
                "min_pub": 1,
                "schedule": "America/New_York;0400-0930;",
                "state": "beta",
            },
            "over_night": None,
        },
        "corporate_actions": [
            {
                "event_type": "split",
                "activation": {"us_equity_ex_date": {"ex_date": "2026-06-01"}},
                "adjustment_factor_numerator": 25,
                "adjustment_factor_denominator": 1,
            }
        ],
        "expiration_time": None,
        "groups": ["us-equities"],
        "a_field_from_the_future": {"nested": [1, 2, 3]},
    }
    (entry,) = decode_symbols(json.dumps([row]))
    assert entry.nasdaq_symbol == "BKNG" and entry.quote_currency == "USD"
    assert entry.instrument_type is InstrumentType.SPOT
    assert entry.hermes_id == row["hermes_id"]
    assert set(entry.market_session_schedule) == {"regular", "pre_market"}  # nulls dropped
    assert entry.market_sessions["pre_market"].state is FeedState.BETA
    assert entry.market_sessions["regular"].min_publishers == 2
    assert "over_night" not in entry.market_sessions
    (split,) = entry.corporate_actions
    assert (split.kind, split.ex_date) == ("split", date(2026, 6, 1))
    assert Decimal(split.adjustment_numerator or 0) / (split.adjustment_denominator or 1) == 25
    assert entry.expiration is None and entry.groups == ("us-equities",)
    assert entry.raw["a_field_from_the_future"] == {"nested": [1, 2, 3]}


def test_odd_values_of_known_fields_never_fail_the_call() -> None:
    rows = [
        {
            "pyth_lazer_id": "5",  # an integer as a string, as Lazer's JSON allows
            "symbol": "Rates.US10Y",
            "exponent": "not a number",
            "instrument_type": "swap",  # a future instrument type
            "market_sessions": ["not", "an", "object"],
            "corporate_actions": "none",
            "groups": "all",
            "expiration_time": "2026-12-18T21:00:00Z",
            "funding_rate_interval": "8h",
            "min_channel": 3,  # channels may be named by number
        },
        {"pyth_lazer_id": 6, "symbol": "Y", "expiration_time": 1_797_627_600_000_000},
    ]
    first, second = decode_symbols(json.dumps(rows))
    assert first.feed_id == 5 and first.exponent == 0 and first.raw["exponent"] == "not a number"
    assert first.instrument_type == "swap" and not isinstance(first.instrument_type, InstrumentType)
    assert first.market_sessions == {} and first.corporate_actions == () and first.groups == ()
    assert first.expiration == datetime(2026, 12, 18, 21, tzinfo=timezone.utc)
    assert first.funding_rate_interval_us == 8 * 3_600_000_000 and first.min_channel == "3"
    assert second.expiration == datetime(2026, 12, 18, 21, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "body",
    [
        b'[{"symbol": "no id"}]',
        b'[{"pyth_lazer_id": 1}]',
        b'[{"pyth_lazer_id": 4294967296, "symbol": "x"}]',
        b'{"not": "a list"}',
        b"not json",
    ],
)
def test_an_entry_without_its_identity_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(pl.ProtocolError, match="symbols"):
        decode_symbols(body)


def test_humantime_durations() -> None:
    assert parse_duration_us("8h") == 28_800_000_000
    assert parse_duration_us("1h 30m") == 5_400_000_000
    assert parse_duration_us("28800s") == 28_800_000_000
    assert parse_duration_us("250ms") == 250_000
    assert parse_duration_us("soon") is None and parse_duration_us("") is None


# -- through the public API, against a simulator ---------------------------------------

H = 3_600_000_000
EXPIRY_US = 1_797_627_600_000_000  # 2026-12-18T21:00:00Z


def _catalogue() -> Catalogue:
    """Every state, a future, a corporate action, access groups, and a state from the
    future, beside the default feeds."""
    base = {f.feed_id: f for f in Catalogue.default()}
    extra = [
        FeedInfo(
            feed_id=600 + i,
            symbol=f"Crypto.S{i}/USD",
            name=f"State {state}",
            description=f"A FEED IN STATE {state.upper()}",
            asset_type="crypto",
            exponent=-8,
            base_price=Decimal(1),
            state=state,
        )
        for i, state in enumerate(["inactive", "beta", "expired", "delisting_soon"])
    ]
    future = FeedInfo(
        feed_id=700,
        symbol="Commodities.WTIZ6/USD",
        name="WTI Crude Oil December 2026",
        description="WTI CRUDE OIL FUTURE DEC 2026 / US DOLLAR",
        asset_type="commodity",
        exponent=-5,
        base_price=Decimal("71.2"),
        sessions="fx",
        instrument_type="future",
        expiration_us=EXPIRY_US,
        groups=("cme-futures",),
    )
    return Catalogue([*base.values(), *extra, future])


@pytest.fixture(scope="module")
def sim() -> Simulator:
    with Simulator(seed=18, token=TOKEN, catalogue=_catalogue()) as s:
        yield s  # type: ignore[misc]


def _rest(sim: Simulator, **kwargs: object) -> pl.RestClient:
    url = sim.rest_url
    options: dict[str, object] = {
        "rest_url": url,
        "api_url": url,
        "history_url": url,
        "backoff": FAST_BACKOFF,
    }
    options.update(kwargs)
    return pl.RestClient(TOKEN, **options)  # type: ignore[arg-type]


def test_symbols_come_from_the_new_location_with_every_new_field(sim: Simulator) -> None:
    before = sim.rest_requests()
    client = pl.LazerClient(TOKEN, endpoints=[sim.url], num_connections=1)
    entries = client.symbols()
    after = sim.rest_requests()
    assert after.get("/v1/symbols", 0) == before.get("/v1/symbols", 0) + 1
    assert after.get("/history/v1/symbols", 0) == before.get("/history/v1/symbols", 0)
    assert entries.source.endswith("/v1/symbols") and not entries.from_cache
    by_id = {e.feed_id: e for e in entries}
    assert sorted(by_id) == sim.catalogue.ids
    for info in sim.catalogue:
        entry = by_id[info.feed_id]
        assert (entry.symbol, entry.name, entry.exponent) == (info.symbol, info.name, info.exponent)
        assert entry.state == info.state and entry.min_channel == info.min_channel.value
        assert entry.schedule == info.schedule
    states = {by_id[600 + i].state for i in range(4)}
    assert states == {FeedState.INACTIVE, FeedState.BETA, FeedState.EXPIRED, "delisting_soon"}
    assert by_id[1].state is FeedState.STABLE and by_id[11].state is FeedState.COMING_SOON
    aapl = by_id[300]
    assert aapl.nasdaq_symbol == "AAPL" and aapl.quote_currency == "USD"
    assert aapl.instrument_type is InstrumentType.SPOT
    assert set(aapl.market_sessions) == {"regular", "pre_market", "post_market", "over_night"}
    assert aapl.market_session_schedule["regular"].startswith("America/New_York;0930-1600,")
    assert aapl.market_sessions["regular"].min_publishers == 3
    (split,) = by_id[301].corporate_actions  # NVDA's 10-for-1 of 2024-06-10
    assert (split.kind, split.ex_date, split.adjustment_numerator) == (
        "split",
        date(2024, 6, 10),
        10,
    )
    future = by_id[700]
    assert future.instrument_type is InstrumentType.FUTURE
    assert future.expiration == datetime(2026, 12, 18, 21, tzinfo=timezone.utc)
    assert future.groups == ("cme-futures",)
    funding = by_id[500]
    assert funding.instrument_type is InstrumentType.RATE
    assert funding.funding_rate_interval_us == 8 * H and funding.interval == "8h"
    # The service's filters, including the new instrument type.
    assert [e.feed_id for e in client.symbols(instrument_type="future")] == [700]
    assert {e.feed_id for e in client.symbols("wti")} == {400, 700}
    client.close()


def test_symbols_fall_back_to_the_old_location_while_the_new_one_fails(sim: Simulator) -> None:
    rest = _rest(sim, retries=0)
    sim.rest_outage(503, paths=["/v1/symbols"])
    try:
        before = sim.rest_requests()
        entries = rest.symbols(asset_type="fx")
        after = sim.rest_requests()
    finally:
        sim.rest_outage(None)
    assert entries.source.endswith("/history/v1/symbols?asset_type=fx")
    assert [e.feed_id for e in entries] == [
        f.feed_id for f in sim.catalogue.search(asset_type="fx")
    ]
    assert after["/v1/symbols"] == before.get("/v1/symbols", 0) + 1
    assert after["/history/v1/symbols"] == before.get("/history/v1/symbols", 0) + 1
    # The old location's entries have the old fields only; they decode all the same.
    assert all(e.instrument_type is None and e.market_sessions == {} for e in entries)
    # A catalogue URL where nothing answers /v1/symbols (HTTP 404): the old location too.
    moved = _rest(sim, api_url=f"{sim.rest_url}/moved", history_url=sim.rest_url)
    assert [e.feed_id for e in moved.symbols("crypto.btc")] == [1]


def test_symbols_fail_in_one_clear_error_when_neither_location_answers(sim: Simulator) -> None:
    with refusing_port() as port:
        rest = _rest(sim, api_url=f"http://127.0.0.1:{port}", history_url=sim.rest_url, retries=1)
        sim.rest_outage(502, paths=["/history/v1/symbols"])
        try:
            with pytest.raises(pl.RestError) as info:
                rest.symbols()
        finally:
            sim.rest_outage(None)
    text = str(info.value)
    assert f"127.0.0.1:{port}/v1/symbols" in text and "/history/v1/symbols" in text
    assert "HTTP 502" in text and info.value.status == 502
    # A refused token is not "unreachable": no fallback hides it.
    with pytest.raises(pl.AuthenticationError):
        pl.RestClient("wrong-token", history_url=sim.rest_url).symbols()


def test_the_cache_answers_when_the_service_is_down(sim: Simulator, tmp_path: Path) -> None:
    cache = tmp_path / "deep" / "symbols.json"
    rest = _rest(sim, retries=0, symbols_cache=cache)
    fresh = rest.symbols()
    assert not fresh.from_cache and cache.exists()
    assert TOKEN not in cache.read_text()
    sim.rest_outage(503)
    try:
        cached = rest.symbols("crypto.btc")
        assert cached.from_cache and cached.source == str(cache)
        assert [e.feed_id for e in cached] == [1]
        assert cached[0] == next(e for e in fresh if e.feed_id == 1)
        assert cached[0].raw == next(e for e in fresh if e.feed_id == 1).raw
        # A young enough copy is answered without asking at all.
        before = sim.rest_requests()
        young = rest.symbols(max_age=3600)
        assert young.from_cache and len(young) == len(fresh)
        assert sim.rest_requests() == before
        # refresh: ask anyway (the service is down: the cache again, after asking).
        assert rest.symbols(max_age=3600, refresh=True).from_cache
        assert sim.rest_requests() != before
    finally:
        sim.rest_outage(None)
    # Back up: fresh again, and the file is rewritten (fetched_at moves on).
    again = rest.symbols(max_age=0)
    assert not again.from_cache and again.fetched_at >= fresh.fetched_at


def test_no_cache_or_a_broken_one_is_a_clear_error_not_a_crash(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "symbols.json"
    rest = _rest(sim, retries=0)
    sim.rest_outage(503)
    try:
        with pytest.raises(pl.RestError, match="no cached catalogue"):
            rest.symbols(cache=cache)
        cache.write_text("{half a file")
        with (
            caplog.at_level(logging.WARNING, logger="pylazer_sync.rest"),
            pytest.raises(pl.RestError, match="no cached catalogue"),
        ):
            rest.symbols(cache=cache)
        assert "not usable" in caplog.text
    finally:
        sim.rest_outage(None)
    assert len(rest.symbols(cache=cache)) == len(sim.catalogue)  # and it is repaired
    assert json.loads(cache.read_text())["kind"] == "pylazer-sync symbols cache"


def test_the_simulator_serves_both_shapes(sim: Simulator) -> None:
    """The raw answers: every SymbolMetadata field at the new location (null when
    absent, as serde writes them), PROTOCOL.md's fields at the old one."""
    import urllib.request

    def get(path: str) -> list[dict[str, object]]:
        request = urllib.request.Request(
            f"{sim.rest_url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    (new,) = get("/v1/symbols?query=AAPL")
    for key in (
        "pyth_lazer_id", "name", "symbol", "description", "asset_type", "exponent", "cmc_id",
        "funding_rate_interval", "min_publishers", "min_channel", "state", "hermes_id",
        "quote_currency", "nasdaq_symbol", "market_session_schedule", "instrument_type",
        "market_sessions", "corporate_actions", "expiration_time", "groups",
    ):  # fmt: skip
        assert key in new, key
    (old,) = get("/history/v1/symbols?query=AAPL")
    assert "market_sessions" not in old and old["pyth_lazer_id"] == new["pyth_lazer_id"]
