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
