"""The one optimistic read-modify-write, on the kit's in-memory store."""

from collections.abc import Callable

import pytest

from dapr_service_kit.optimistic import TooMuchContention, update_key
from dapr_service_kit.state_store import Versioned
from dapr_service_kit.testing import MemoryStateStore


def append(suffix: bytes) -> Callable[[bytes | None], bytes]:
    def change(data: bytes | None) -> bytes:
        return (data or b"") + suffix

    return change


async def test_an_absent_key_is_created_with_a_first_write() -> None:
    state = MemoryStateStore()
    assert await update_key(state, "k", append(b"a")) is None
    assert state.items["k"] == Versioned(b"a", "1")


async def test_the_write_lands_on_the_version_it_was_computed_from() -> None:
    state = MemoryStateStore()
    await update_key(state, "k", append(b"a"))
    replaced = await update_key(state, "k", append(b"b"))
    assert replaced == Versioned(b"a", "1")
    assert state.items["k"] == Versioned(b"ab", "2")


async def test_nothing_to_write_writes_nothing() -> None:
    state = MemoryStateStore()
    assert await update_key(state, "k", lambda data: None) is None
    assert state.calls == {"get": 1}


async def test_a_wrong_guess_costs_one_refused_write_then_a_read() -> None:
    state = MemoryStateStore()
    await update_key(state, "k", append(b"a"))
    await update_key(state, "k", append(b"b"), assumed=Versioned(b"stale", "0"))
    assert state.items["k"] == Versioned(b"ab", "2")
    assert state.refused == {"k": 1}
    assert state.calls == {"get": 2, "save": 3}


async def test_a_writer_that_always_loses_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dapr_service_kit.optimistic.MAX_ATTEMPTS", 4)

    class AlwaysBeaten(MemoryStateStore):
        async def get(self, key: str) -> Versioned | None:
            found = await super().get(key)
            # Another writer lands between this read and its write.
            theirs = self.items[key]
            self.items[key] = Versioned(b"theirs", str(int(theirs.etag) + 1))
            return found

    state = AlwaysBeaten()
    state.items["k"] = Versioned(b"x", "0")
    with pytest.raises(TooMuchContention):
        await update_key(state, "k", append(b"a"))
    assert state.refused["k"] == 4
