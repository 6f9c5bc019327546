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
    *,
    assumed: Versioned | None = None,
) -> Versioned | None:
    """Apply `change` to the key's current value (None when absent) until the write
    lands on the version it was computed from. `change` returning None means nothing
    to write. With `assumed`, the first attempt starts from that version instead of
    reading the key (a wrong guess costs one refused write, then a read).

    Returns the version the landed write replaced (None when it created the key or
    nothing was written)."""
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
