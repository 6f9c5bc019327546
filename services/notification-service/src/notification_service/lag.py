"""How far behind the task events are when notification-service handles them: what a
person watching the notifications waits. task-api reads it (GET /pipeline/lag, through
service invocation) to refuse writes while the events cannot keep up."""

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Gauge

# The lag reported is the largest of the events handled within this many seconds.
WINDOW_SECONDS = 0.5

LAG = Gauge(
    "notification_lag_seconds",
    "How old the task events handled in the last half second were, at most",
)


class LagMeter:
    def __init__(
        self,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._recent: deque[tuple[float, float]] = deque()  # (handled at, lag)
        LAG.set_function(self.seconds)

    def observe(self, published_at: datetime) -> None:
        """An event published at `published_at` (its timestamp) was handled now."""
        now = self._monotonic()
        self._recent.append((now, max(0.0, self._wall_clock() - published_at.timestamp())))
        self._forget_before(now - WINDOW_SECONDS)

    def seconds(self) -> float:
        """The largest lag of the events handled lately; 0 when none were (nothing to
        catch up with, or nothing arriving: either way no backlog this replica sees)."""
        self._forget_before(self._monotonic() - WINDOW_SECONDS)
        return max((lag for _, lag in self._recent), default=0.0)

    def _forget_before(self, horizon: float) -> None:
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
