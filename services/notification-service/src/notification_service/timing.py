"""How long recording a notification may take, in one place: the deadlines Dapr puts on
the callers (the Resiliency resources), the deadline of one call to the sidecar, and
what the notification log derives from them.

The claim on a notification is held by one attempt at a time. Exactly-once rests on
two rules, both measured with a process's own monotonic clock, never by comparing the
wall clocks of two replicas:

- a holder does everything it does within `hold_seconds` of sending its claim (it is
  cut off there) and writes its line only while there is still time to mark it logged;
- another process takes a claim over only once it has watched that very claim (holder
  and version) stay unfinished for `take_over_after_seconds`, longer than a hold: by
  then its holder can neither log nor write any more.
"""

from dataclasses import dataclass

# task-api's sidecar gives one `notify` call this long (`timeouts.notify` of
# task-api-resiliency), then retries it. tests/deploy keeps the files in step.
NOTIFY_CALL_TIMEOUT_SECONDS = 3.0
# notification-service's sidecar gives one delivery of a task event this long
# (`timeouts.delivery` of notification-service-resiliency), then retries it.
DELIVERY_TIMEOUT_SECONDS = 10.0
# What an answer needs to reach the sidecar before its timeout, on a busy machine.
ANSWER_MARGIN_SECONDS = 1.0
# A call the app has given up on is cancelled in its sidecar too (gRPC propagates the
# cancellation); this covers the time that takes. Writes are conditional on the
# version, so one that still lands later cannot undo a take-over.
CANCEL_MARGIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class AttemptTiming:
    """The notification log's timing, derived from `call_seconds`: the deadline of one
    call to the sidecar (Settings.dapr_call_timeout_seconds, 5 s)."""

    call_seconds: float = 5.0
    cancel_margin_seconds: float = CANCEL_MARGIN_SECONDS
    # How often a process watching another's claim reads it again.
    poll_seconds: float = 0.25

    @property
    def hold_seconds(self) -> float:
        """The longest an attempt holds a claim, from sending it: one call's deadline
        each for the claim, the listing (a read and a write of its shard) and the mark.
        Under contention the listing takes more: the hold cuts it off."""
        return 3 * self.call_seconds

    def log_within_seconds(self, mark_calls: int) -> float:
        """A holder writes its line only this soon after sending its claim: the mark
        (`mark_calls` calls: a write, and a read first on stores whose ETags do not
        count writes) must fit in the rest of the hold."""
        return self.hold_seconds - mark_calls * self.call_seconds

    @property
    def take_over_after_seconds(self) -> float:
        """How long a claim must be seen unfinished, unchanged, before another process
        takes it over: longer than any holder can still log or write. 16 s at 5 s per
        call; the old 2 s, judged by comparing two replicas' clocks, let a live, slow
        attempt and its successor both log."""
        return self.hold_seconds + self.cancel_margin_seconds

    @property
    def watch_seconds(self) -> float:
        """How long one attempt watches a claim held elsewhere before it gives up (the
        caller asks again): long enough to take over, with one slow read."""
        return self.take_over_after_seconds + self.call_seconds

    @property
    def notify_wait_seconds(self) -> float:
        """How long a `notify` call waits for the attempt at its notification (its own,
        or one in progress) before it answers 503: within task-api's call timeout, so
        that the sidecar hears the answer and retries."""
        return NOTIFY_CALL_TIMEOUT_SECONDS - ANSWER_MARGIN_SECONDS

    @property
    def delivery_wait_seconds(self) -> float:
        """The same for a delivery of a task event (answered RETRY): within the
        delivery's timeout."""
        return DELIVERY_TIMEOUT_SECONDS - 2 * ANSWER_MARGIN_SECONDS
