"""A short per-task lease that serializes writers of one task.

Why: on Redis, a Dapr state transaction is MULTI/EXEC over one script per operation.
When one operation's ETag check fails the others still run, including the commit
marker of Dapr's outbox, so a lost race would still publish its event. Holding the
task's lease while reading it and writing it makes a failing ETag check practically
impossible; the write still carries the ETag, so even a lease that expired under a
stalled writer can never overwrite a newer version.

A lease records its holder and its own expiry time. The key's TTL is only garbage
collection: state.redis writes a key and sets its TTL in two commands, and when the
second is lost (daprd killed, a deadline, a reset) the key stays for good. A writer
that finds a lease past its expiry takes it over with a write conditional on the
version it read, so of several waiters exactly one gets it. Expiry is judged on the
waiter's clock against the holder's: replicas' clocks must agree to within the margin
between LEASE_TTL_SECONDS and the longest a holder takes (30 s against 20 s, see
test_the_lease_outlives_the_longest_holder). A value this version cannot read (a lease
of an older version, which has no expiry of its own) is taken for expired.

A holder releases only its own lease: it deletes the version it knows names this
holder. Otherwise a writer slower than the lease would delete the next holder's and let
a third writer race it. The holder learns that version when it reads the task (one
bulk read of both, `HeldLease.learn`), and then gives the lease back in the very
transaction that commits its write (`HeldLease.give_back`): a status change costs three
sidecar calls (lease, read, commit) instead of five. A holder that did not learn its
version (or whose lease write's outcome is unknown: its answer lost, the request
cancelled; it may have landed) reads the lease back first.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

from task_api.errors import TaskBusy
from task_api.ports import (
    EtagMismatch,
    InfrastructureUnavailable,
    KeyVersion,
    StateStore,
    Versioned,
)

logger = logging.getLogger(__name__)
# Well above what a holder can take: a read and a transaction, each bounded by the
# sidecar call deadline (5 s by default), so a live holder never loses its lease.
LEASE_TTL_SECONDS = 30
LEASE_WAIT_SECONDS = 2.0

WallClock = Callable[[], float]


def lease_key(task_id: UUID) -> str:
    return f"lease:task:{task_id}"


def _lease(owner: str, expires_at: float) -> bytes:
    return json.dumps({"owner": owner, "expires_at": expires_at}, separators=(",", ":")).encode()


def _read(data: bytes) -> tuple[str, float] | None:
    """The holder and expiry time of a stored lease; None when it is not one."""
    try:
        raw = json.loads(data)
        return str(raw["owner"]), float(raw["expires_at"])
    except (ValueError, KeyError, TypeError):
        return None


def _expired(data: bytes, now: float) -> bool:
    lease = _read(data)
    return lease is None or lease[1] <= now


@dataclass
class HeldLease:
    """The lease a writer holds: its key, and once read back, the version that names
    this holder."""

    key: str
    owner: str
    version: Versioned | None = None
    # Deleted by the transaction that committed the holder's write.
    given_back: bool = False

    def learn(self, stored: Versioned | None) -> None:
        """What a read of the lease key found: its version, if it still names us."""
        lease = _read(stored.data) if stored is not None else None
        self.version = stored if lease is not None and lease[0] == self.owner else None

    def give_back(self) -> KeyVersion | None:
        """What a commit deletes along with its write (None: the version is not known;
        the lease is released after the commit as usual). Call `given_back_by_commit`
        once that commit succeeded."""
        return KeyVersion(self.key, self.version.etag) if self.version else None

    def given_back_by_commit(self) -> None:
        self.given_back = self.version is not None


@contextlib.asynccontextmanager
async def task_lease(
    state: StateStore, task_id: UUID, *, clock: WallClock = time.time
) -> AsyncIterator[HeldLease]:
    key = lease_key(task_id)
    owner = uuid4().hex
    held = HeldLease(key, owner)
    # Whether a lease write of ours may have landed (set before each write, cleared
    # when the store refused it), and whether one surely did.
    may_hold = acquired = False
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    delay = 0.002
    # A lease found past its expiry: the next write takes it over at that version.
    expired: Versioned | None = None
    try:
        while True:
            may_hold = True
            try:
                await _write(state, key, _lease(owner, clock() + LEASE_TTL_SECONDS), expired)
                acquired = True
                break
            except EtagMismatch:
                may_hold = False
            found = await state.get(key)
            expired = found if found is not None and _expired(found.data, clock()) else None
            # Released or expired since: try again at once; else wait a little.
            at_once = found is None or expired is not None
            if time.monotonic() + (0 if at_once else delay) > deadline:
                raise TaskBusy(str(task_id))
            if expired is not None:
                logger.warning("the lease of task %s outlived its expiry; taking it over", task_id)
            if not at_once:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)
        yield held
    finally:
        if held.given_back:
            pass
        elif held.version is not None:
            await _delete(state, held.version, key, task_id)
        elif may_hold:
            await _release(state, key, owner, task_id, acquired=acquired)


async def _write(state: StateStore, key: str, lease: bytes, expired: Versioned | None) -> None:
    if expired is None:
        await state.save(key, lease, etag=None, first_write=True, ttl_seconds=LEASE_TTL_SECONDS)
    else:
        await state.save(key, lease, etag=expired.etag, ttl_seconds=LEASE_TTL_SECONDS)


async def _release(
    state: StateStore, key: str, owner: str, task_id: UUID, *, acquired: bool
) -> None:
    try:
        held = await state.get(key)
    except InfrastructureUnavailable:
        logger.warning("could not release the lease of task %s; it expires by itself", task_id)
        return
    lease = _read(held.data) if held is not None else None
    if held is None or lease is None or lease[0] != owner:
        if acquired:
            logger.warning("the lease of task %s expired while held; not releasing", task_id)
        return
    await _delete(state, held, key, task_id)


async def _delete(state: StateStore, version: Versioned, key: str, task_id: UUID) -> None:
    try:
        await state.delete(key, etag=version.etag)
    except EtagMismatch:
        # Expired and taken over since (or deleted by a commit whose answer was lost).
        logger.warning("the lease of task %s changed hands while released", task_id)
    except InfrastructureUnavailable:
        # It expires by itself; the outcome of the write is what the caller must hear.
        logger.warning("could not release the lease of task %s; it expires by itself", task_id)
