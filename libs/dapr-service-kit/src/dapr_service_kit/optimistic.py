"""Read-modify-write of one state key, retried when another writer got there first: the
one optimistic-concurrency loop of both services (task-api's index, notification-service's
recent list)."""

import asyncio
import random
from collections.abc import Callable

from dapr_service_kit.errors import EtagMismatch
from dapr_service_kit.state_store import StateStore, Versioned

MAX_ATTEMPTS = 64


class TooMuchContention(Exception):
    """The key's write lost the race MAX_ATTEMPTS times in a row: the caller may retry
    later (each service says how: 409, 503, a redelivery)."""


async def update_key(
    state: StateStore,
    key: str,
    change: Callable[[bytes | None], bytes | None],
    *,
    assumed: Versioned | None = None,
) -> Versioned | None:
    """Apply `change` to the key's current value (None when absent) until the write
    lands on the version it was computed from. `change` returning None means nothing
    to write. With `assumed`, the first attempt starts from that version instead of
    reading the key (a wrong guess costs one refused write, then a read). `change` may
    run several times: what it finds out, it keeps from its last call.

    Returns the version the landed write replaced (None when it created the key or
    nothing was written). Raises TooMuchContention when every attempt lost."""
    for attempt in range(MAX_ATTEMPTS):
        guessed = attempt == 0 and assumed is not None
        current: Versioned | None = assumed if guessed else await state.get(key)
        new = change(current.data if current else None)
        if new is None:
            return None
        try:
            if current is None:
                await state.save(key, new, etag=None, first_write=True)
            else:
                await state.save(key, new, etag=current.etag)
        except EtagMismatch:
            if not guessed:
                # Jittered backoff so that racers on a hot key spread out.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
            continue
        return current
    raise TooMuchContention(key)
