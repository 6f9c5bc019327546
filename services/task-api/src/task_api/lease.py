"""A short per-task lease that serializes writers of one task.

Why: on Redis, a Dapr state transaction is MULTI/EXEC over one script per operation.
When one operation's ETag check fails the others still run, including the commit
marker of Dapr's outbox, so a lost race would still publish its event. Holding the
task's lease while reading it and writing it makes a failing ETag check practically
impossible; the write still carries the ETag, so even a lease that expired under a
stalled writer can never overwrite a newer version.

A holder releases only its own lease: it reads the lease back and deletes that version
if it still names this holder. Otherwise a writer slower than the TTL would delete the
next holder's lease and let a third writer race it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

from task_api.errors import TaskBusy
from task_api.ports import EtagMismatch, InfrastructureUnavailable, StateStore

logger = logging.getLogger(__name__)
# Well above what a holder can take: a read and a transaction, each bounded by the
# sidecar call deadline (5 s by default), so a live holder never loses its lease.
LEASE_TTL_SECONDS = 30
LEASE_WAIT_SECONDS = 2.0


def lease_key(task_id: UUID) -> str:
    return f"lease:task:{task_id}"


@contextlib.asynccontextmanager
async def task_lease(state: StateStore, task_id: UUID) -> AsyncIterator[None]:
    key = lease_key(task_id)
    owner = uuid4().bytes
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    delay = 0.002
    while True:
        try:
            await state.save(key, owner, etag=None, first_write=True, ttl_seconds=LEASE_TTL_SECONDS)
            break
        except EtagMismatch:
            if time.monotonic() + delay > deadline:
                raise TaskBusy(str(task_id)) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
    try:
        yield
    finally:
        await _release(state, key, owner, task_id)


async def _release(state: StateStore, key: str, owner: bytes, task_id: UUID) -> None:
    try:
        held = await state.get(key)
        if held is None or held.data != owner:
            logger.warning("the lease of task %s expired while held; not releasing", task_id)
            return
        await state.delete(key, etag=held.etag)
    except EtagMismatch:
        logger.warning("the lease of task %s changed hands while released", task_id)
    except InfrastructureUnavailable:
        # The TTL frees it; the outcome of the write is what the caller must hear.
        logger.warning("could not release the lease of task %s; it expires by itself", task_id)
