"""Which tasks exist, in creation order, without scanning the store.

Debian's Redis has no RediSearch, so Dapr's state query API is not available. Instead
every task id is kept in one of a fixed number of index shards (chosen by the id), so
concurrent creates rarely touch the same key. A list reads all shards in one bulk get
and merges them.

An entry is added *before* its task is committed and removed *after* its task is
deleted, so the index is always a superset of the live tasks: a task whose create
returned 201 is always listed, and readers skip entries whose task is missing or
deleted.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from task_api.conditional import update_key
from task_api.ports import StateStore

# Changing this moves every task to another shard: it is part of the stored format.
SHARD_COUNT = 16


@dataclass(frozen=True, order=True, slots=True)
class IndexEntry:
    created_at: datetime
    task_id: UUID


def shard_of(task_id: UUID) -> int:
    return task_id.int % SHARD_COUNT


def shard_key(shard: int) -> str:
    return f"index:{shard:02d}"


def _decode(data: bytes | None) -> dict[str, str]:
    return json.loads(data) if data else {}


def _encode(entries: dict[str, str]) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()


class TaskIndex:
    def __init__(self, state: StateStore) -> None:
        self._state = state

    async def add(self, entry: IndexEntry) -> None:
        member, created = str(entry.task_id), entry.created_at.isoformat()

        def add_entry(data: bytes | None) -> bytes | None:
            entries = _decode(data)
            if entries.get(member) == created:
                return None
            entries[member] = created
            return _encode(entries)

        await update_key(self._state, shard_key(shard_of(entry.task_id)), add_entry)

    async def remove(self, task_id: UUID) -> None:
        member = str(task_id)

        def remove_entry(data: bytes | None) -> bytes | None:
            entries = _decode(data)
            if entries.pop(member, None) is None:
                return None
            return _encode(entries)

        await update_key(self._state, shard_key(shard_of(task_id)), remove_entry)

    async def newest_first(self, *, before: IndexEntry | None) -> Iterator[IndexEntry]:
        """Every entry, newest first; with `before`, only the entries after it in that
        order."""
        shards = await self._state.get_many([shard_key(s) for s in range(SHARD_COUNT)])
        entries = [
            IndexEntry(datetime.fromisoformat(created), UUID(member))
            for shard in shards.values()
            for member, created in _decode(shard.data).items()
        ]
        entries.sort(reverse=True)
        return iter(entries if before is None else [e for e in entries if e < before])
