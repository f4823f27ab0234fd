"""The active subscriptions, and which request each answer of the server belongs to.

Every connection re-sends every active subscription when it (re)connects, so this
registry is the single source of truth for "what should this client be receiving".

It also decides which answers (``Subscribed``, ``Unsubscribed``, ``SubscriptionError``,
...) reach ``recv()``. Their bytes carry only the subscription id, so the dedup by raw
frame cannot tell a second ``subscribe(7)``'s answer from the first one's. Instead each
``subscribe()`` / ``unsubscribe()`` call gets a *generation*; each connection records
what it sends on each socket, in order, and the server answers each socket's requests in
order, so an answer from connection c on socket e belongs to the oldest request that c
sent on e for that subscription and is still unanswered. The rule that follows:

- each ``subscribe()`` / ``unsubscribe()`` call's answer reaches ``recv()`` exactly once,
  from whichever connection brings it first; the other connections' copies are dropped;
- a re-subscription that a connection sends by itself after a reconnect belongs to the
  same generation as the ``subscribe()`` call: when the server accepts it again, nothing
  new reaches ``recv()``; when the server now refuses it, that ``SubscriptionError`` is
  delivered once (a new answer), whatever the age of the subscription;
- a ``subscribe()`` the server refuses is forgotten: it is not re-sent after reconnects
  and no longer counted in ``stats()["subscriptions"]``.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import Enum

from .errors import InvalidRequestError
from .protocol import (
    Subscribed,
    SubscribedWithIgnoredFeeds,
    SubscribeRequest,
    SubscriptionError,
    Unsubscribed,
)

Answer = Subscribed | SubscribedWithIgnoredFeeds | Unsubscribed | SubscriptionError
ANSWER_TYPES: frozenset[type] = frozenset(
    (Subscribed, SubscribedWithIgnoredFeeds, Unsubscribed, SubscriptionError)
)


# Generations whose delivered answers are remembered, besides the active subscriptions'
# (always kept): each is one subscribe()/unsubscribe() call, and the copies of its
# answers arrive within moments; keeping the last few thousand bounds the memory of a
# program that subscribes and unsubscribes for ever.
_REMEMBERED_GENERATIONS = 4096


class RequestKind(Enum):
    """What a connection sent."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


class _Outcome(Enum):
    """What an answer says; one of each per generation reaches recv()."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNSUBSCRIBED = "unsubscribed"


def _outcome(answer: Answer) -> _Outcome:
    if isinstance(answer, SubscriptionError):
        return _Outcome.REFUSED
    if isinstance(answer, Unsubscribed):
        return _Outcome.UNSUBSCRIBED
    return _Outcome.ACCEPTED


@dataclass(frozen=True, slots=True)
class _Sent:
    subscription_id: int
    kind: RequestKind
    generation: int


class SubscriptionRegistry:
    """Active subscriptions by id, in the order they were made; safe from any thread.

    Writers: the client (subscribe/unsubscribe), the connection threads (what they
    sent), the dedup thread (answers). One lock guards it all; answers are rare.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, tuple[SubscribeRequest, int]] = {}
        self._ids = itertools.count(1)
        self._generations = itertools.count(1)
        # (connection, socket epoch) -> requests sent on that socket, not yet answered.
        self._pending: dict[tuple[int, int], deque[_Sent]] = {}
        self._epochs: dict[int, int] = {}  # newest socket epoch the dedup thread saw
        # generation -> outcomes already delivered, for the newest generations.
        self._delivered: OrderedDict[int, set[_Outcome]] = OrderedDict()
        self.refused = 0
        """Subscriptions the server refused (and that were forgotten)."""

    # -- the client ----------------------------------------------------------------------

    def add(self, request: SubscribeRequest) -> tuple[SubscribeRequest, int]:
        """Record a subscription, assigning a fresh id when it has none; returns it with
        its id, and its generation."""
        with self._lock:
            if request.subscription_id is None:
                sub_id = next(self._ids)
                while sub_id in self._active:
                    sub_id = next(self._ids)
                request = request.with_id(sub_id)
            elif request.subscription_id in self._active:
                raise InvalidRequestError(
                    f"subscription_id: {request.subscription_id} is already active; "
                    "unsubscribe it first or leave the id out to get a fresh one"
                )
            assert request.subscription_id is not None
            generation = self._new_generation()
            self._active[request.subscription_id] = (request, generation)
            return request, generation

    def remove(self, subscription_id: int) -> int:
        """Forget a subscription; returns the generation of the unsubscribe request.

        Raises InvalidRequestError if it is not active.
        """
        with self._lock:
            if self._active.pop(subscription_id, None) is None:
                raise InvalidRequestError(
                    f"subscription_id: {subscription_id!r} is not an active subscription"
                )
            return self._new_generation()

    def _new_generation(self) -> int:
        generation = next(self._generations)
        self._delivered[generation] = set()
        if len(self._delivered) > _REMEMBERED_GENERATIONS:
            # Forget the oldest generation that is not an active subscription's: an
            # active one must stay, its re-subscriptions are answered at any age.
            active = {gen for _, gen in self._active.values()}
            oldest = next((gen for gen in self._delivered if gen not in active), None)
            if oldest is not None:
                del self._delivered[oldest]
        return generation

    def snapshot(self) -> list[tuple[SubscribeRequest, int]]:
        """The active subscriptions with their generations, oldest first."""
        with self._lock:
            return list(self._active.values())

    def requests(self) -> list[SubscribeRequest]:
        """The active subscriptions, oldest first."""
        with self._lock:
            return [request for request, _ in self._active.values()]

    def get(self, subscription_id: int) -> SubscribeRequest | None:
        """One active subscription, or None."""
        with self._lock:
            entry = self._active.get(subscription_id)
            return None if entry is None else entry[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._active)

    def awaiting_answers(self) -> int:
        """Requests sent and not answered yet (those of closed sockets until the
        connection's new socket brings its first frame)."""
        with self._lock:
            return sum(len(q) for q in self._pending.values())

    # -- the connection threads ------------------------------------------------------------

    def sent(
        self, connection: int, epoch: int, subscription_id: int, kind: RequestKind, generation: int
    ) -> None:
        """Record a request just before it is sent on socket ``epoch`` of ``connection``."""
        with self._lock:
            self._pending.setdefault((connection, epoch), deque()).append(
                _Sent(subscription_id, kind, generation)
            )

    # -- the dedup thread ------------------------------------------------------------------

    def answer(self, connection: int, epoch: int, answer: Answer) -> bool | None:
        """Whether an answer read on socket ``epoch`` of ``connection`` reaches recv().

        True for the first answer of its kind to a request, False for a copy already
        delivered, None when no request of this client explains it (the caller then
        treats it like any other frame).
        """
        with self._lock:
            self._purge_older_sockets(connection, epoch)
            sent = self._match(connection, epoch, answer)
            if sent is None:
                return None
            outcome = _outcome(answer)
            delivered = self._delivered.get(sent.generation)
            if delivered is None or outcome in delivered:
                deliver = False
            else:
                delivered.add(outcome)
                deliver = True
            if outcome is _Outcome.REFUSED and sent.kind is RequestKind.SUBSCRIBE:
                active = self._active.get(sent.subscription_id)
                if active is not None and active[1] == sent.generation:
                    del self._active[sent.subscription_id]  # refused: never re-sent
                    self.refused += 1
            return deliver

    def _match(self, connection: int, epoch: int, answer: Answer) -> _Sent | None:
        """Take the oldest unanswered request this answer can belong to; requests for the
        same subscription before it were never answered and are dropped."""
        queue = self._pending.get((connection, epoch))
        if not queue:
            return None
        sub_id = answer.subscription_id
        outcome = _outcome(answer)
        for index, sent in enumerate(queue):
            if sent.subscription_id != sub_id:
                continue
            if (
                outcome is _Outcome.REFUSED
                or (outcome is _Outcome.ACCEPTED and sent.kind is RequestKind.SUBSCRIBE)
                or (outcome is _Outcome.UNSUBSCRIBED and sent.kind is RequestKind.UNSUBSCRIBE)
            ):
                self._pending[(connection, epoch)] = deque(
                    other
                    for i, other in enumerate(queue)
                    if i > index or (i < index and other.subscription_id != sub_id)
                )
                return sent
        return None

    def _purge_older_sockets(self, connection: int, epoch: int) -> None:
        """Answers from a connection's new socket mean its older sockets are done: what
        was sent on them and never answered never will be."""
        if self._epochs.get(connection, -1) >= epoch:
            return
        self._epochs[connection] = epoch
        for key in [k for k in self._pending if k[0] == connection and k[1] < epoch]:
            del self._pending[key]
