"""Back-pressure from the event pipeline: writes slow down to the rate their events keep
up with, instead of the lag growing without end.

Every write publishes an event; under sustained load the API can accept writes faster
than the outbox relay and notification-service handle their events. notification-
service reports how old the events it handles are (its `pipeline/lag` method); a
watcher asks every `poll_seconds` and steers how many writes this replica runs at once,
as TCP steers its window: a third fewer while the lag is above `target_seconds`, a
quarter more (at least one) while it is below and writes use every slot. A write beyond
that number waits for a slot, and is refused with 503 and Retry-After when none frees
up in time.

Measured on two cores (bench/results/event-lag.md): a gate that only opened and shut
at the target swung between bursts and stalls (lag p99 2.3 s); the steered number
settles where the events keep up.

The watcher asks only while writes come. When notification-service cannot be asked
(down, restarting), writes are not held back at first: their events wait durably in the
broker, and holding writes would make task-api's availability hang on
notification-service's. But the broker keeps a bounded backlog (the pub/sub components'
maxLenApprox trims the oldest entries, read or not), so a replica admits at most
UNCONFIRMED_WRITES writes while nobody confirms that events are handled, and then
answers 503 until notification-service answers again: an acknowledged write is refused
rather than its event trimmed away unread.
"""

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import Gauge

from task_api.ports import InfrastructureUnavailable

logger = logging.getLogger(__name__)

# Writes a replica runs at once when nothing holds them back: far above what the
# store needs for its best rate, so only the lag ever limits.
MAX_CONCURRENT_WRITES = 256
# Where the limit starts, and grows from only while writes use all of it: the lag
# answers a burst a second late (the outbox relay's wait), so a limit that had grown
# unused would let the first second of a burst run far ahead of the events. Measured on
# two cores (bench/results/): from 3, a 4-second burst ran at ~350 creates/s against the
# ~410/s the events sustain; from 8, with a quarter more per answer while the events
# keep up, it runs at the sustained rate from its first second, and the lag's p99
# stays under 2 s (event-lag.md).
INITIAL_CONCURRENT_WRITES = 8
# While the events keep up and writes use every slot: this share more per answer.
GROWTH_PER_ANSWER = 0.25
# While the limit is cut, a line at most this often, not one per answer.
LOG_EVERY_SECONDS = 10.0
# After notification-service did not answer, the next question only this much later.
RETRY_SECONDS = 5.0
# Writes a replica admits while notification-service does not answer: a quarter of the
# task-events stream's cap (maxLenApprox 100,000 in components/*/pubsub.yaml), so that up
# to four replicas never push an unread event past the trim.
UNCONFIRMED_WRITES = 25_000
# The watcher asks only while writes came within this long: an idle API costs nothing,
# and asks nothing of a notification-service that may not be resolvable yet (a name
# lookup refused then is cached by the cluster's DNS, for `notify` too).
IDLE_SECONDS = 5.0


LAG = Gauge(
    "reported_event_lag_seconds",
    "The event lag notification-service reported last (task_api.backpressure)",
)
WRITE_LIMIT = Gauge("write_limit", "Writes this replica runs at once, as the lag allows")
WRITES_WAITING = Gauge("writes_waiting", "Writes waiting for a slot")


class NoSlot(Exception):
    """No write slot freed up in time: the events are behind; retry shortly."""


class WriteLimiter:
    def __init__(
        self,
        lag_seconds: Callable[[], Awaitable[float]],
        *,
        target_seconds: float,
        poll_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        unconfirmed_writes: int = UNCONFIRMED_WRITES,
    ) -> None:
        self._ask = lag_seconds
        self._target = target_seconds
        self._poll = poll_seconds
        self._monotonic = monotonic
        # Whether the last question went unanswered: then only the backlog's bound holds
        # writes back.
        self._unreachable = False
        self._unconfirmed_budget = unconfirmed_writes
        # Writes admitted since notification-service last answered.
        self._unconfirmed = 0
        self._written_at = float("-inf")
        self._writing = asyncio.Event()
        self.limit = INITIAL_CONCURRENT_WRITES
        self.in_flight = 0
        # The most writes in flight since the last answer: whether the limit was used.
        self._peak = 0
        self._logged_at = float("-inf")
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        WRITE_LIMIT.set(self.limit)
        WRITES_WAITING.set_function(lambda: len(self._waiting))

    @contextlib.asynccontextmanager
    async def slot(self, wait_seconds: float) -> AsyncIterator[None]:
        """Run one write within the limit; NoSlot if none frees up within `wait_seconds`.
        Slots go to waiting writes first come, first served."""
        self._written_at = self._monotonic()
        self._writing.set()
        if self._unreachable and self._unconfirmed >= self._unconfirmed_budget:
            raise NoSlot
        self._unconfirmed += 1
        if self._waiting or self.in_flight >= self._effective_limit():
            # Behind those already waiting: a newcomer must not take the slot that is
            # being handed to the first of them.
            await self._handed_a_slot(wait_seconds)
        else:
            self.in_flight += 1
        self._peak = max(self._peak, self.in_flight)
        try:
            yield
        finally:
            self._release()

    async def _handed_a_slot(self, wait_seconds: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(wait_seconds):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                # Handed a slot in the same turn as the wait ended: give it back.
                self._release()
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            if isinstance(error, TimeoutError):
                raise NoSlot from None
            raise

    def _effective_limit(self) -> int:
        return MAX_CONCURRENT_WRITES if self._unreachable else self.limit

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to the first waiting writes. A slot is counted in flight when
        it is handed over, not when its write runs (a turn of the event loop later), so
        that neither a second release nor a newcomer takes it again in between."""
        while self._waiting and self.in_flight < self._effective_limit():
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.in_flight += 1

    async def ask_once(self) -> bool:
        """Ask for the lag and steer; False when notification-service did not answer."""
        try:
            lag = await self._ask()
        except InfrastructureUnavailable as error:
            if self._monotonic() - self._logged_at > LOG_EVERY_SECONDS:
                self._logged_at = self._monotonic()
                logger.warning("could not learn the event lag (%s); not holding writes", error)
            self._unreachable = True
            self._wake()  # whoever waits may go on
            return False
        self._unreachable = False
        self._unconfirmed = 0
        LAG.set(lag)
        used, self._peak = self._peak >= self.limit, self.in_flight
        if lag > self._target:
            self.limit = max(1, math.floor(self.limit * 2 / 3))
            if self._monotonic() - self._logged_at > LOG_EVERY_SECONDS:
                self._logged_at = self._monotonic()
                logger.warning(
                    "notifications trail writes by %.1f s: %d writes at once", lag, self.limit
                )
        elif used and lag > 0:
            # Only on an answer about events handled: right after writes begin, none has
            # come through the outbox yet, and a lag of 0 says nothing about them.
            grown = self.limit + max(1, int(self.limit * GROWTH_PER_ANSWER))
            self.limit = min(MAX_CONCURRENT_WRITES, grown)
        self._wake()
        WRITE_LIMIT.set(self.limit)
        return True

    async def watch(self) -> None:
        """Ask every poll interval while writes come, until cancelled; after a failure
        only every RETRY_SECONDS: the sidecar's circuit breaker for notification-service
        counts these calls too, and a poll that failed four times a second would keep
        it open for `notify` as well."""
        this = asyncio.current_task()
        while True:
            if self._monotonic() - self._written_at > IDLE_SECONDS:
                self._writing.clear()
                await self._writing.wait()
            try:
                answered = await self.ask_once()
            except Exception as error:  # the watcher must outlive anything one call does
                logger.warning("could not learn the event lag: %r", error)
                answered = False
            if this is not None and this.cancelling():
                # A client library may turn the cancellation into an error of its own.
                raise asyncio.CancelledError
            await asyncio.sleep(self._poll if answered else RETRY_SECONDS)
