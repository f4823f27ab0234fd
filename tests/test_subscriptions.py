"""The subscription registry's answer matching, step by step (the threads' view of it)."""

from __future__ import annotations

import pylazer_sync as pl
from pylazer_sync.protocol import SubscribeRequest
from pylazer_sync.subscriptions import RequestKind, SubscriptionRegistry

REQUEST = SubscribeRequest(price_feed_ids=[1], properties=["price"], subscription_id=7)
SUB, UNSUB = RequestKind.SUBSCRIBE, RequestKind.UNSUBSCRIBE


def test_the_first_copy_is_delivered_even_before_the_other_connections_sent() -> None:
    """A fast connection's answer may be matched before a slow one has even recorded
    its request: the answer still reaches recv() once (it once did not at all)."""
    registry = SubscriptionRegistry()
    _, gen = registry.add(REQUEST)
    registry.sent(0, 1, 7, SUB, gen)
    assert registry.answer(0, 1, pl.Subscribed(7)) is True
    registry.sent(1, 1, 7, SUB, gen)
    assert registry.answer(1, 1, pl.Subscribed(7)) is False
    unsub = registry.remove(7)
    registry.sent(0, 1, 7, UNSUB, unsub)
    assert registry.answer(0, 1, pl.Unsubscribed(7)) is True
    registry.sent(1, 1, 7, UNSUB, unsub)
    assert registry.answer(1, 1, pl.Unsubscribed(7)) is False
    assert registry.awaiting_answers() == 0


def test_answers_match_requests_in_order_per_socket() -> None:
    registry = SubscriptionRegistry()
    _, first = registry.add(REQUEST)
    registry.sent(0, 1, 7, SUB, first)
    unsub = registry.remove(7)
    registry.sent(0, 1, 7, UNSUB, unsub)
    _, second = registry.add(REQUEST)
    registry.sent(0, 1, 7, SUB, second)
    # Connection 0 answers its three requests; each is a new answer.
    assert [
        registry.answer(0, 1, pl.Subscribed(7)),
        registry.answer(0, 1, pl.Unsubscribed(7)),
        registry.answer(0, 1, pl.Subscribed(7)),
    ] == [True, True, True]
    assert registry.answer(0, 1, pl.Subscribed(7)) is None  # nothing left to answer


def test_a_new_socket_drops_what_the_old_one_never_answered() -> None:
    registry = SubscriptionRegistry()
    _, gen = registry.add(REQUEST)
    registry.sent(0, 1, 7, SUB, gen)  # the socket died before the answer
    registry.sent(0, 2, 7, SUB, gen)  # re-sent on the new socket
    assert registry.answer(0, 2, pl.Subscribed(7)) is True
    assert registry.awaiting_answers() == 0  # the old socket's request is gone too


def test_a_refusal_forgets_the_subscription_and_a_later_refusal_of_a_resubscription_is_new() -> (
    None
):
    registry = SubscriptionRegistry()
    _, gen = registry.add(REQUEST)
    registry.sent(0, 1, 7, SUB, gen)
    registry.sent(1, 1, 7, SUB, gen)
    assert registry.answer(0, 1, pl.Subscribed(7)) is True
    # Connection 1 reconnected and the server now refuses the re-subscription.
    registry.sent(1, 2, 7, SUB, gen)
    assert registry.answer(1, 2, pl.SubscriptionError(7, "gone")) is True
    assert len(registry) == 0 and registry.refused == 1


def test_remembered_generations_are_bounded_but_active_ones_are_kept() -> None:
    registry = SubscriptionRegistry()
    _, kept = registry.add(SubscribeRequest(price_feed_ids=[1], properties=["price"]))
    for _ in range(5000):
        registry.add(REQUEST)
        registry.remove(7)
    assert len(registry._delivered) <= 4096
    assert kept in registry._delivered  # an active subscription's answers, at any age
    registry.sent(0, 1, 1, SUB, kept)
    assert registry.answer(0, 1, pl.Subscribed(1)) is True
