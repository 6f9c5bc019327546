"""Read-modify-write of one state key, retried when another writer got there first."""

import asyncio
import random
from collections.abc import Callable

from task_api.ports import EtagMismatch, StateStore, Versioned

MAX_ATTEMPTS = 64


class TooMuchContention(Exception):
    pass


async def update_key(
    state: StateStore,
    key: str,
    change: Callable[[bytes | None], bytes | None],
) -> None:
    """Apply `change` to the key's current value (None when absent) until the write
    lands on the version it was computed from. `change` returning None means nothing
    to write."""
    for attempt in range(MAX_ATTEMPTS):
        current: Versioned | None = await state.get(key)
        new = change(current.data if current else None)
        if new is None:
            return
        try:
            if current is None:
                await state.save(key, new, etag=None, first_write=True)
            else:
                await state.save(key, new, etag=current.etag)
        except EtagMismatch:
            # Jittered backoff so that racers on a hot key spread out.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
            continue
        return
    raise TooMuchContention(key)
