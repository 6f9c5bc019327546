"""The in-memory state store both services' unit tests run on behaves as state.redis
does where their code relies on it."""

import pytest

from dapr_service_kit.errors import EtagMismatch, InfrastructureUnavailable
from dapr_service_kit.state_store import Versioned
from dapr_service_kit.testing import MemorySecrets, MemoryStateStore


async def test_versions_count_writes_and_a_write_must_name_the_current_one() -> None:
    state = MemoryStateStore()
    await state.save("k", b"a", etag=None, first_write=True)
    await state.save("k", b"b", etag="1")
    assert await state.get("k") == Versioned(b"b", "2")
    for etag, first_write in (("1", False), (None, True)):
        with pytest.raises(EtagMismatch):
            await state.save("k", b"c", etag=etag, first_write=first_write)
    assert state.refused == {"k": 2}


async def test_a_key_expires_with_its_ttl_and_starts_again_from_version_one() -> None:
    state = MemoryStateStore()
    await state.save("k", b"a", etag=None, ttl_seconds=10)
    await state.save("k", b"b", etag="1")  # keeps its TTL, as HSET does
    state.advance(9)
    assert await state.get("k") == Versioned(b"b", "2")
    state.advance(1)
    assert await state.get("k") is None
    await state.save("k", b"c", etag=None, first_write=True)
    assert await state.get_many(["k", "other"]) == {"k": Versioned(b"c", "1")}


async def test_a_store_that_is_down_fails_every_call_and_counts_it() -> None:
    state = MemoryStateStore(down=True)
    with pytest.raises(InfrastructureUnavailable):
        await state.get("k")
    with pytest.raises(InfrastructureUnavailable):
        await state.ping()
    assert state.calls == {"get": 1, "ping": 1}


async def test_a_delete_with_an_etag_deletes_only_that_version() -> None:
    state = MemoryStateStore()
    await state.save("k", b"a", etag=None)
    with pytest.raises(EtagMismatch):
        await state.delete("k", etag="2")
    await state.delete("k", etag="1")
    assert state.items == {}


async def test_secrets_may_be_unavailable_for_the_first_calls() -> None:
    secrets = MemorySecrets({"name": "value"}, unavailable_calls=1)
    with pytest.raises(InfrastructureUnavailable):
        await secrets.get_secret("name")
    assert await secrets.get_secret("name") == "value"
