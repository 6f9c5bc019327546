"""In-memory stand-ins for the kit's state and secret ports, and a clock, for unit tests
only: no service imports this module, and fakes live only in unit tests, behind the
services' own small ports. Both services' tests use these, as they are or extended with
what a service's own port adds (task-api: its outbox write)."""

import asyncio
import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dapr_service_kit.errors import EtagMismatch, InfrastructureUnavailable
from dapr_service_kit.state_store import Versioned


class Clock:
    """Each reading is one second after the last: creation order is unambiguous."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class MemoryStateStore:
    """Keys with integer versions, like state.redis: a write must name the current
    version, or (first-write) find the key absent. A key written with a TTL is gone once
    `advance` has moved the fake time past it; like Redis, a key written again starts
    from version 1. While `down`, every call fails as an outage does.

    Like the real sidecar, every read yields to other tasks before it returns
    (`read_yields` times: more, and racing writers interleave more), so that they
    interleave between their read and their write."""

    items: dict[str, Versioned] = field(default_factory=dict)
    etags_count_writes: bool = True
    ttls: dict[str, int] = field(default_factory=dict)
    down: bool = False
    now: float = 0.0
    expires: dict[str, float] = field(default_factory=dict)
    read_yields: int = 1
    # The calls made, by method, as the sidecar would count them.
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    # Writes refused for a stale version (EtagMismatch), by key.
    refused: collections.Counter[str] = field(default_factory=collections.Counter)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for key, at in list(self.expires.items()):
            if at <= self.now:
                self.items.pop(key, None)
                del self.expires[key]

    def _check_up(self, call: str) -> None:
        self.calls[call] += 1
        if self.down:
            raise InfrastructureUnavailable("state store is down (fake)")

    async def get(self, key: str) -> Versioned | None:
        self._check_up("get")
        found = self.items.get(key)
        await self._yield()
        return found

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, Versioned]:
        self._check_up("get_many")
        found = {k: self.items[k] for k in keys if k in self.items}
        await self._yield()
        return found

    async def _yield(self) -> None:
        for _ in range(self.read_yields):
            await asyncio.sleep(0)

    def _expire_in(self, key: str, ttl_seconds: int | None) -> None:
        # Without a TTL a write keeps the key's old one, as state.redis' HSET does.
        if ttl_seconds:
            self.ttls[key] = ttl_seconds
            self.expires[key] = self.now + ttl_seconds

    def _write(self, key: str, data: bytes, etag: str | None, first_write: bool) -> None:
        current = self.items.get(key)
        if (etag is not None and (current is None or current.etag != etag)) or (
            etag is None and first_write and current is not None
        ):
            self.refused[key] += 1
            raise EtagMismatch(key)
        version = int(current.etag) + 1 if current else 1
        self.items[key] = Versioned(data, str(version))

    async def save(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        first_write: bool = False,
        ttl_seconds: int | None = None,
    ) -> None:
        self._check_up("save")
        self._write(key, data, etag, first_write)
        self._expire_in(key, ttl_seconds)

    async def delete(self, key: str, *, etag: str | None = None) -> None:
        """Delete the key; with `etag`, only that version (EtagMismatch otherwise)."""
        self._check_up("delete")
        self._delete(key, etag)

    def _delete(self, key: str, etag: str | None) -> None:
        current = self.items.get(key)
        if etag is not None and (current is None or current.etag != etag):
            raise EtagMismatch(key)
        self.items.pop(key, None)
        self.expires.pop(key, None)

    async def ping(self) -> None:
        self._check_up("ping")


@dataclass
class MemorySecrets:
    values: dict[str, str] = field(default_factory=dict)
    # Calls that fail as if the sidecar's secret store were still starting.
    unavailable_calls: int = 0

    async def get_secret(self, name: str) -> str:
        if self.unavailable_calls:
            self.unavailable_calls -= 1
            raise InfrastructureUnavailable("secret store not loaded yet (fake)")
        return self.values[name]
