"""The simulated market: a catalogue of feeds and a deterministic price model.

Every value is a pure function of ``(seed, feed id, timestamp)``: two simulators with the
same seed agree on every price at every microsecond, whenever they were started, which is
what makes their frames byte-identical. The model uses integer arithmetic only (no
floats, no ``math.exp``), so the numbers do not depend on the platform's libm either.

Shape of the prices: the log-free relative deviation from a base price is a sum of
"value noise" octaves (hashed lattice points, linearly interpolated) at periods from 4 ms
to about 18 hours, with amplitudes growing like the square root of the period, as a
random walk's do. Computing one price costs a few dozen integer operations, whatever the
timestamp, where a literal random walk would have to sum every step since the epoch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from ..errors import InvalidRequestError
from ..protocol import Channel, FeedUpdate, MarketSession

_MASK64: Final = (1 << 64) - 1
_US_PER_MS: Final = 1_000
_US_PER_HOUR: Final = 3_600_000_000
_US_PER_DAY: Final = 24 * _US_PER_HOUR
_US_PER_WEEK: Final = 7 * _US_PER_DAY
# Sessions follow New York time at a fixed UTC-5 offset: no time-zone database needed and
# no daylight-saving jumps; being an hour off in summer does not matter to a simulator.
_ET_OFFSET_US: Final = 5 * _US_PER_HOUR

# Octave periods are powers of two in milliseconds (cheap shifts): 2**2 .. 2**26 ms.
_OCTAVE_SHIFTS: Final = (2, 5, 8, 11, 14, 17, 20, 23, 26)
# Octaves from this index on (periods >= 2 s) make the smooth part that emaPrice follows.
_EMA_FROM_OCTAVE: Final = 3
# An update event can be found by scanning back at most this many milliseconds.
_MAX_SCAN_MS: Final = 1_000


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def seed_to_int(seed: int | str | bytes) -> int:
    """A 64-bit integer from any seed, the same on every platform and Python version."""
    raw = seed if isinstance(seed, bytes) else str(seed).encode()
    return int.from_bytes(hashlib.sha256(b"pylazer-sync-market\x00" + raw).digest()[:8], "big")


@dataclass(frozen=True)
class FeedInfo:
    """One feed of the catalogue: what the symbols endpoint tells and how its price moves.

    ``base_price`` is the level the simulated price wanders around; ``volatility`` is the
    amplitude of its slowest octave (0.03 = about 3 % over a day). ``sessions`` picks the
    market hours: ``"24/7"`` (crypto), ``"fx"`` (closed from Friday 17:00 to Sunday 17:00
    New York time) or ``"equity"`` (pre-market, regular, post-market and overnight
    sessions on weekdays, closed at the weekend). While a market is closed no update
    happens: prices are carried forward from the close.
    """

    feed_id: int
    symbol: str
    name: str
    description: str
    asset_type: str
    exponent: int
    base_price: Decimal
    volatility: Decimal = Decimal("0.03")
    min_publishers: int = 3
    # How many publishers contribute (inclusive range, varies each second).
    publishers: tuple[int, int] = (5, 12)
    min_channel: Channel = Channel.REAL_TIME
    state: str = "stable"
    sessions: str = "24/7"
    has_bid_ask: bool = True
    # Probability (out of 1024) that the feed's price changes in a given millisecond;
    # the lower, the more often a tick carries a price forward.
    update_odds: int = 512
    # Relative half-spread and confidence, in parts per billion of the price.
    spread_ppb: int = 50_000
    confidence_ppb: int = 100_000
    # Funding feeds only: the funding interval in microseconds (None: not a funding feed).
    funding_interval_us: int | None = None
    cmc_id: int | None = None
    hermes_id: str | None = None
    # Reference data of the API service's catalogue (``/v1/symbols``, see reference.py):
    # the instrument type (None: ``rate`` for funding feeds, else ``spot``), a future's
    # expiration, corporate actions as (kind, ex-date, numerator, denominator), and the
    # access groups the feed needs.
    instrument_type: str | None = None
    expiration_us: int | None = None
    corporate_actions: tuple[tuple[str, str, int, int], ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def is_funding(self) -> bool:
        """Whether the feed carries fundingRate, fundingTimestamp and fundingRateInterval."""
        return self.funding_interval_us is not None

    @property
    def schedule(self) -> str:
        """The trading schedule in Pythnet's format, as the symbols endpoint gives it."""
        if self.sessions == "equity":
            return "America/New_York;O,O,O,O,0000-2000,C,2000-2400;"
        if self.sessions == "fx":
            return "America/New_York;O,O,O,O,0000-1700,C,1700-2400;"
        return "America/New_York;O,O,O,O,O,O,O;"

    def metadata(self) -> dict[str, Any]:
        """The feed as one element of the old ``GET /history/v1/symbols`` (PROTOCOL.md's
        fields); ``/v1/symbols`` answers more (``simulator/reference.py``)."""
        out: dict[str, Any] = {
            "pyth_lazer_id": self.feed_id,
            "name": self.name,
            "symbol": self.symbol,
            "description": self.description,
            "asset_type": self.asset_type,
            "exponent": self.exponent,
            "min_publishers": self.min_publishers,
            "min_channel": self.min_channel.value,
            "state": self.state,
            "schedule": self.schedule,
        }
        if self.cmc_id is not None:
            out["cmc_id"] = self.cmc_id
        if self.hermes_id is not None:
            out["hermes_id"] = self.hermes_id
        if self.funding_interval_us is not None:
            out["interval"] = f"{self.funding_interval_us // _US_PER_HOUR}h"
        return out


def _crypto(
    feed_id: int, base: str, name: str, price: str, **kw: Any
) -> FeedInfo:  # a catalogue helper
    return FeedInfo(
        feed_id=feed_id,
        symbol=f"Crypto.{base}/USD",
        name=f"{name} / US Dollar",
        description=f"{name.upper()} / US DOLLAR",
        asset_type="crypto",
        exponent=kw.pop("exponent", -8),
        base_price=Decimal(price),
        **kw,
    )


def _default_feeds() -> list[FeedInfo]:
    h8 = 8 * _US_PER_HOUR
    return [
        _crypto(1, "BTC", "Bitcoin", "65000", cmc_id=1, update_odds=700, spread_ppb=20_000),
        _crypto(2, "ETH", "Ethereum", "3200", cmc_id=1027, update_odds=650),
        _crypto(3, "PYTH", "Pyth Network", "0.35", cmc_id=28177, volatility=Decimal("0.06")),
        _crypto(4, "USDC", "USD Coin", "1", volatility=Decimal("0.0005"), confidence_ppb=20_000),
        _crypto(5, "USDT", "Tether", "1", volatility=Decimal("0.0005"), confidence_ppb=20_000),
        _crypto(6, "SOL", "Solana", "150", cmc_id=5426, update_odds=600),
        _crypto(7, "DOGE", "Dogecoin", "0.12", has_bid_ask=False, update_odds=300),
        _crypto(8, "AVAX", "Avalanche", "28", update_odds=400),
        _crypto(9, "LINK", "Chainlink", "14.5", update_odds=350),
        # Thin market: often fewer publishers than min_publishers, so no aggregate price.
        _crypto(
            10,
            "THIN",
            "Thin Coin",
            "2.5",
            min_publishers=3,
            publishers=(1, 4),
            update_odds=120,
            has_bid_ask=False,
        ),
        # Listed but not yet stable: refused (or ignored) as "unstable".
        _crypto(11, "NEW", "New Coin", "0.01", state="coming_soon", update_odds=100),
        FeedInfo(
            feed_id=100,
            symbol="FX.EUR/USD",
            name="Euro / US Dollar",
            description="EURO / US DOLLAR",
            asset_type="fx",
            exponent=-5,
            base_price=Decimal("1.08"),
            volatility=Decimal("0.005"),
            sessions="fx",
            has_bid_ask=False,
            update_odds=250,
            confidence_ppb=10_000,
        ),
        FeedInfo(
            feed_id=101,
            symbol="FX.USD/JPY",
            name="US Dollar / Japanese Yen",
            description="US DOLLAR / JAPANESE YEN",
            asset_type="fx",
            exponent=-3,
            base_price=Decimal("151.2"),
            volatility=Decimal("0.006"),
            sessions="fx",
            has_bid_ask=False,
            update_odds=250,
            confidence_ppb=10_000,
        ),
        FeedInfo(
            feed_id=200,
            symbol="Metal.XAU/USD",
            name="Gold / US Dollar",
            description="GOLD / US DOLLAR",
            asset_type="metal",
            exponent=-3,
            base_price=Decimal("2350"),
            volatility=Decimal("0.01"),
            sessions="fx",
            update_odds=300,
        ),
        FeedInfo(
            feed_id=300,
            symbol="Equity.US.AAPL/USD",
            name="Apple Inc.",
            description="APPLE INC / US DOLLAR",
            asset_type="equity",
            exponent=-5,
            base_price=Decimal("190"),
            volatility=Decimal("0.02"),
            sessions="equity",
            update_odds=400,
        ),
        FeedInfo(
            feed_id=301,
            symbol="Equity.US.NVDA/USD",
            name="NVIDIA Corporation",
            description="NVIDIA CORP / US DOLLAR",
            asset_type="equity",
            exponent=-5,
            base_price=Decimal("880"),
            volatility=Decimal("0.04"),
            sessions="equity",
            update_odds=400,
            corporate_actions=(("split", "2024-06-10", 10, 1),),
        ),
        # Only offered at 200 ms or slower: "unsupportedChannels" on faster channels.
        FeedInfo(
            feed_id=302,
            symbol="Equity.US.SPY/USD",
            name="SPDR S&P 500 ETF Trust",
            description="SPDR S&P 500 ETF TRUST / US DOLLAR",
            asset_type="equity",
            exponent=-5,
            base_price=Decimal("520"),
            volatility=Decimal("0.01"),
            sessions="equity",
            min_channel=Channel.FIXED_RATE_200MS,
            update_odds=200,
        ),
        FeedInfo(
            feed_id=400,
            symbol="Commodities.WTI/USD",
            name="WTI Crude Oil",
            description="WTI CRUDE OIL / US DOLLAR",
            asset_type="commodity",
            exponent=-5,
            base_price=Decimal("78.4"),
            volatility=Decimal("0.02"),
            sessions="fx",
            min_channel=Channel.FIXED_RATE_50MS,
            update_odds=150,
        ),
        FeedInfo(
            feed_id=500,
            symbol="FundingRate.Binance.BTC/USDT",
            name="Bitcoin perpetual funding rate (Binance)",
            description="BTC/USDT PERPETUAL FUNDING RATE, BINANCE",
            asset_type="funding-rate",
            exponent=-8,
            base_price=Decimal("65010"),
            has_bid_ask=False,
            funding_interval_us=h8,
            update_odds=200,
        ),
        FeedInfo(
            feed_id=501,
            symbol="FundingRate.Binance.ETH/USDT",
            name="Ethereum perpetual funding rate (Binance)",
            description="ETH/USDT PERPETUAL FUNDING RATE, BINANCE",
            asset_type="funding-rate",
            exponent=-8,
            base_price=Decimal("3201"),
            has_bid_ask=False,
            funding_interval_us=h8,
            update_odds=200,
        ),
        FeedInfo(
            feed_id=502,
            symbol="FundingRate.Bybit.SOL/USDT",
            name="Solana perpetual funding rate (Bybit)",
            description="SOL/USDT PERPETUAL FUNDING RATE, BYBIT",
            asset_type="funding-rate",
            exponent=-8,
            base_price=Decimal("150.1"),
            has_bid_ask=False,
            funding_interval_us=4 * _US_PER_HOUR,
            update_odds=200,
        ),
    ]


class Catalogue:
    """The feeds a simulator offers, looked up by id or by symbol.

    The default catalogue (:meth:`default`) resembles production: crypto, FX, metals,
    equities with market hours, a commodity, funding-rate feeds, a thin feed that often
    lacks an aggregate price, a feed only offered at 200 ms and one that is not stable
    yet. Feed ids and prices are made up; do not compare them with production.
    """

    def __init__(self, feeds: Iterable[FeedInfo]) -> None:
        self._by_id: dict[int, FeedInfo] = {}
        self._by_symbol: dict[str, FeedInfo] = {}
        for feed in feeds:
            if feed.feed_id in self._by_id:
                raise InvalidRequestError(f"duplicate feed id {feed.feed_id} in the catalogue")
            if feed.symbol in self._by_symbol:
                raise InvalidRequestError(f"duplicate symbol {feed.symbol!r} in the catalogue")
            self._by_id[feed.feed_id] = feed
            self._by_symbol[feed.symbol] = feed

    @classmethod
    def default(cls) -> Catalogue:
        """The built-in catalogue (about twenty feeds of every kind)."""
        return cls(_default_feeds())

    def __iter__(self) -> Iterator[FeedInfo]:
        return iter(sorted(self._by_id.values(), key=lambda f: f.feed_id))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, feed_id: object) -> bool:
        return feed_id in self._by_id

    def get(self, feed_id: int) -> FeedInfo | None:
        """The feed with this id, or ``None``."""
        return self._by_id.get(feed_id)

    def by_symbol(self, symbol: str) -> FeedInfo | None:
        """The feed with this exact symbol (``Crypto.BTC/USD``), or ``None``."""
        return self._by_symbol.get(symbol)

    @property
    def ids(self) -> list[int]:
        """Every feed id, ascending."""
        return sorted(self._by_id)

    def search(self, query: str | None = None, asset_type: str | None = None) -> list[FeedInfo]:
        """Feeds whose symbol, name or description contains ``query`` (any case) and whose
        asset type is ``asset_type`` (any case), as the symbols endpoint filters them."""
        q = (query or "").lower()
        kind = (asset_type or "").lower()
        return [
            f
            for f in self
            if (not kind or f.asset_type == kind)
            and (
                not q or q in f.symbol.lower() or q in f.name.lower() or q in f.description.lower()
            )
        ]


@dataclass(frozen=True)
class _FeedModel:
    """Per-feed constants of the price model, derived once from the seed."""

    info: FeedInfo
    key: int
    base: int  # base price as a mantissa
    amplitudes: tuple[int, ...]  # per octave, in parts per billion
    update_threshold: int  # an event happens in a millisecond when its hash < this


def _build_model(info: FeedInfo, seed: int) -> _FeedModel:
    key = _mix(seed ^ _mix(info.feed_id))
    base = int(info.base_price.scaleb(-info.exponent).to_integral_value())
    top = int(info.volatility * 1_000_000_000)
    # Amplitude ~ sqrt(period): each octave is 8x longer, so sqrt(8) ~ 2.83x larger.
    last = len(_OCTAVE_SHIFTS) - 1
    amplitudes = tuple(top * 1000 ** (last - j) // 2828 ** (last - j) for j in range(last + 1))
    return _FeedModel(info, key, base, amplitudes, info.update_odds << 54)


def _session_at(kind: str, t_us: int) -> tuple[MarketSession, int | None]:
    """The market session at ``t_us`` and, when closed, the time the market closed."""
    if kind == "24/7":
        return MarketSession.REGULAR, None
    et = t_us - _ET_OFFSET_US
    day_start = et - et % _US_PER_DAY
    weekday = (et // _US_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    tod = et - day_start
    close_tod = (17 if kind == "fx" else 20) * _US_PER_HOUR
    closed_since: int | None = None
    if weekday == 4 and tod >= close_tod:
        closed_since = day_start + close_tod
    elif weekday == 5:
        closed_since = day_start - _US_PER_DAY + close_tod
    elif weekday == 6 and tod < close_tod:
        closed_since = day_start - 2 * _US_PER_DAY + close_tod
    if closed_since is not None:
        return MarketSession.CLOSED, closed_since + _ET_OFFSET_US
    if kind == "fx":
        return MarketSession.REGULAR, None
    if tod < 4 * _US_PER_HOUR or tod >= 20 * _US_PER_HOUR:
        return MarketSession.OVER_NIGHT, None
    if tod < 9 * _US_PER_HOUR + 30 * 60_000_000:
        return MarketSession.PRE_MARKET, None
    if tod < 16 * _US_PER_HOUR:
        return MarketSession.REGULAR, None
    return MarketSession.POST_MARKET, None


class MarketModel:
    """Deterministic market data: :meth:`feed_update` gives every property of a feed at a
    timestamp, the same for the same seed on every machine and in every process.

    What it serves, property by property:

    - ``price``: changes only at the feed's update events (random milliseconds, more or
      less frequent per feed); between events, and while the market is closed, the last
      price is carried forward and ``feedUpdateTimestamp`` tells when it was made.
      Absent when fewer than ``min_publishers`` publish (the thin feed does that often).
    - ``bestBidPrice`` / ``bestAskPrice``: around the price, only for feeds that have them.
    - ``publisherCount``, ``exponent``, ``confidence``, ``marketSession``.
    - ``emaPrice`` / ``emaConfidence``: the slow part of the same walk.
    - ``fundingRate`` / ``fundingTimestamp`` / ``fundingRateInterval``: funding feeds only.
    """

    def __init__(self, catalogue: Catalogue, seed: int | str | bytes = 0) -> None:
        self.catalogue = catalogue
        self.seed = seed_to_int(seed)
        self._models = {f.feed_id: _build_model(f, self.seed) for f in catalogue}
        # Several subscriptions (and channels) ask for the same feed at the same tick:
        # compute it once. Bounded, cleared wholesale: entries are cheap to recompute.
        self._cache: dict[tuple[int, int], FeedUpdate] = {}

    def _deviation_ppb(self, m: _FeedModel, t_ms: int) -> tuple[int, int]:
        """(fast + slow, slow) relative deviation from the base price at ``t_ms``."""
        fast = slow = 0
        key = m.key
        for octave, shift in enumerate(_OCTAVE_SHIFTS):
            k = t_ms >> shift
            frac = t_ms - (k << shift)
            n0 = (_mix(key ^ (octave << 58) ^ k) >> 48) - 32768
            n1 = (_mix(key ^ (octave << 58) ^ (k + 1)) >> 48) - 32768
            value = (m.amplitudes[octave] * ((n0 << shift) + (n1 - n0) * frac)) >> (shift + 15)
            if octave >= _EMA_FROM_OCTAVE:
                slow += value
            else:
                fast += value
        return fast + slow, slow

    def last_update_ms(self, feed_id: int, t_us: int) -> int:
        """The millisecond (since the epoch) of the feed's last price change at or before
        ``t_us``: the moment its price at ``t_us`` was made."""
        m = self._models[feed_id]
        _, closed_since = _session_at(m.info.sessions, t_us)
        t_ms = t_us // _US_PER_MS
        if closed_since is not None:
            # The last price of the session stays until the market reopens.
            return (closed_since - 1) // _US_PER_MS
        key2 = m.key ^ 0x5EED
        threshold = m.update_threshold
        for back in range(_MAX_SCAN_MS):
            if _mix(key2 ^ (t_ms - back)) < threshold:
                return t_ms - back
        return t_ms - _MAX_SCAN_MS

    def feed_update(self, feed_id: int, t_us: int) -> FeedUpdate:
        """Every property of a feed at ``t_us`` (absent values are ``None``).

        The result is shared with later callers: treat it as read-only.
        """
        cache_key = (feed_id, t_us)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        if len(self._cache) > 20_000:
            self._cache.clear()
        update = self._compute(feed_id, t_us)
        self._cache[cache_key] = update
        return update

    def _compute(self, feed_id: int, t_us: int) -> FeedUpdate:
        m = self._models[feed_id]
        info = m.info
        session, _ = _session_at(info.sessions, t_us)
        u_ms = self.last_update_ms(feed_id, t_us)
        total, slow = self._deviation_ppb(m, u_ms)
        base = m.base
        price = max(1, base + base * total // 1_000_000_000)
        ema = max(1, base + base * slow // 1_000_000_000)
        second = u_ms // 1000
        h = _mix(m.key ^ 0xC0F1 ^ second)
        # Publishers come and go each second; a feed whose range reaches below
        # min_publishers has no aggregate price (nor bid, ask, confidence) meanwhile.
        low, high = info.publishers
        publishers = low + h % (high - low + 1)
        conf_ppb = info.confidence_ppb + (info.confidence_ppb * ((h >> 20) % 1000)) // 1000
        confidence = max(1, price * conf_ppb // 1_000_000_000)
        ema_confidence = max(1, ema * info.confidence_ppb * 12 // 10 // 1_000_000_000)
        bid = ask = None
        if info.has_bid_ask:
            half = max(1, price * info.spread_ppb * (1000 + (h >> 40) % 1000) // 1000_000_000_000)
            bid, ask = price - half, price + half
        funding_rate = funding_ts = funding_interval = None
        if info.funding_interval_us is not None:
            funding_interval = info.funding_interval_us
            funding_ts = u_ms * _US_PER_MS // funding_interval * funding_interval
            period = funding_ts // funding_interval
            # About +-0.01 % per period, as a mantissa with the feed's exponent.
            scale = 10 ** max(0, -info.exponent - 4)
            funding_rate = ((_mix(m.key ^ 0xF0D ^ period) >> 48) - 32768) * scale // 32768
        has_price = publishers >= info.min_publishers
        return FeedUpdate(
            feed_id,
            price=price if has_price else None,
            best_bid_price=bid if has_price else None,
            best_ask_price=ask if has_price else None,
            publisher_count=publishers,
            exponent=info.exponent,
            confidence=confidence if has_price else None,
            funding_rate=funding_rate,
            funding_timestamp=funding_ts,
            funding_rate_interval=funding_interval,
            market_session=session.value,
            ema_price=ema,
            ema_confidence=ema_confidence,
            feed_update_timestamp=u_ms * _US_PER_MS,
        )


__all__ = ["Catalogue", "FeedInfo", "MarketModel", "seed_to_int"]
