"""One error contract: everything the library raises on purpose derives from LazerError.

Each case here once raised a plain ValueError, TypeError or AttributeError (issue 10).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import pylazer_sync as pl
from pylazer_sync.protocol import FeedUpdate
from pylazer_sync.protocol.payload import decode_payload


def _raises_lazer_error(call: Callable[[], Any], match: str) -> pl.LazerError:
    with pytest.raises(pl.LazerError, match=match) as info:
        call()
    return info.value


def test_feed_update_real_with_a_field_that_is_not_price_like() -> None:
    error = _raises_lazer_error(lambda: FeedUpdate(1, price=5, exponent=-2).real("nope"), "nope")
    assert isinstance(error, ValueError)  # still catchable as the natural standard error


def test_updates_frame_with_an_unknown_numbers_mode() -> None:
    pytest.importorskip("pandas")
    from pylazer_sync.frames import updates_frame

    _raises_lazer_error(lambda: updates_frame([], numbers="int"), "numbers")  # type: ignore[arg-type]


def test_decode_payload_with_an_unknown_byte_order() -> None:
    _raises_lazer_error(lambda: decode_payload(b"", "middle"), "byte_order")  # type: ignore[arg-type]


def test_simulator_misuse_raises_library_errors() -> None:
    from pylazer_sync.simulator import Simulator

    _raises_lazer_error(lambda: Simulator(rate_hz=0), "rate_hz")
    sim = Simulator(seed=1)
    _raises_lazer_error(sim.drop_all, "not running")
    with sim:
        _raises_lazer_error(lambda: sim.send_garbage("nope"), "garbage")  # type: ignore[arg-type]
        _raises_lazer_error(sim.start, "already running")


def test_every_public_exception_derives_from_lazer_error() -> None:
    exceptions = [
        getattr(pl, name)
        for name in pl.__all__
        if isinstance(getattr(pl, name), type) and issubclass(getattr(pl, name), BaseException)
    ]
    assert len(exceptions) >= 12
    assert all(issubclass(e, pl.LazerError) for e in exceptions)
    # UndecodableFrame is a message, not an exception: `except` cannot be given it by mistake.
    assert not issubclass(pl.UndecodableFrame, BaseException)
