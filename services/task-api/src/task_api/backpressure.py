"""Back-pressure from the event pipeline: writes slow down to the rate their events keep
up with, instead of the lag growing without end.

Every write publishes an event; under sustained load the API can accept writes faster
than the outbox relay and notification-service handle their events. notification-
service reports how old the events it handles are (its `pipeline/lag` method); a
watcher asks every `poll_seconds` and steers how many writes this replica runs at once,
as TCP steers its window: a third fewer while the lag is above `target_seconds`, an
eighth more (at least one) while it is below and writes use every slot. A write beyond
that number waits for a slot, and is refused with 503 and Retry-After when none frees
up in time.

Measured on two cores (bench/results/event-lag.md): a gate that only opened and shut
at the target swung between bursts and stalls (lag p99 2.3 s); the steered number
settles where the events keep up.

When notification-service cannot be asked (down, restarting), writes are not held:
their events wait durably in the broker, and holding writes would make task-api's
availability hang on notification-service's.
"""

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from task_api.ports import InfrastructureUnavailable

logger = logging.getLogger(__name__)

# Writes a replica runs at once when nothing holds them back: far above what the
# store needs for its best rate, so only the lag ever limits.
MAX_CONCURRENT_WRITES = 256
# Where the limit starts, and grows from only while writes use all of it: the lag
# answers a burst a second late (the outbox relay's wait), so a limit that had grown
# unused would let the first second of a burst run far ahead of the events. Eight
# writes at once already reach the store's best rate on two cores.
INITIAL_CONCURRENT_WRITES = 8
# While the limit is cut, a line at most this often, not one per answer.
LOG_EVERY_SECONDS = 10.0


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
    ) -> None:
        self._ask = lag_seconds
        self._target = target_seconds
        self._poll = poll_seconds
        self._monotonic = monotonic
        self._answered_at = float("-inf")
        self.limit = INITIAL_CONCURRENT_WRITES
        self.in_flight = 0
        # The most writes in flight since the last answer: whether the limit was used.
        self._peak = 0
        self._logged_at = float("-inf")
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @contextlib.asynccontextmanager
    async def slot(self, wait_seconds: float) -> AsyncIterator[None]:
        """Run one write within the limit; NoSlot if none frees up within `wait_seconds`."""
        if self.in_flight >= self._effective_limit():
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, wait_seconds)
            except TimeoutError:
                raise NoSlot from None
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
        self.in_flight += 1
        self._peak = max(self._peak, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            self._wake()

    def _effective_limit(self) -> int:
        # A stale answer (notification-service unreachable) holds nothing back.
        fresh = self._monotonic() - self._answered_at <= 4 * self._poll
        return self.limit if fresh else MAX_CONCURRENT_WRITES

    def _wake(self) -> None:
        # A woken waiter takes its slot when it runs: count it in already, so that the
        # next release does not wake one more than the limit allows.
        room = self._effective_limit() - self.in_flight
        while room > 0 and self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1

    async def ask_once(self) -> None:
        try:
            lag = await self._ask()
        except InfrastructureUnavailable:
            self._wake()  # stale soon: whoever waits may go on
            return
        self._answered_at = self._monotonic()
        used, self._peak = self._peak >= self.limit, self.in_flight
        if lag > self._target:
            self.limit = max(1, math.floor(self.limit * 2 / 3))
            if self._answered_at - self._logged_at > LOG_EVERY_SECONDS:
                self._logged_at = self._answered_at
                logger.warning(
                    "notifications trail writes by %.1f s: %d writes at once", lag, self.limit
                )
        elif used:
            self.limit = min(MAX_CONCURRENT_WRITES, self.limit + max(1, self.limit // 8))
        self._wake()

    async def watch(self) -> None:
        """Ask every poll interval until cancelled."""
        this = asyncio.current_task()
        while True:
            try:
                await self.ask_once()
            except Exception as error:  # the watcher must outlive anything one call does
                logger.warning("could not learn the event lag: %r", error)
            if this is not None and this.cancelling():
                # A client library may turn the cancellation into an error of its own.
                raise asyncio.CancelledError
            await asyncio.sleep(self._poll)
