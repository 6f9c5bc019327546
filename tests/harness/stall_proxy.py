"""A TCP proxy that can stall, and a way to put one between a sidecar and its state
store.

While stalled the proxy moves no bytes either way, as a store that has stopped
answering does (a Redis stuck on a slow disk, a congested link): calls hang until the
caller's deadline. Resumed, it delivers what it held, in order, so a write the caller
has given up on can still land late, as it can on a real network. It runs on a thread
with its own event loop, so it keeps serving while a test blocks (a stack's synchronous
start, its readiness waits).
"""

import asyncio
import contextlib
import shutil
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

import yaml

from harness.processes import free_port
from harness.stack import Service, Stack

CHUNK = 64 * 1024


class StallProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen()).result(timeout=10)

    def stop(self) -> None:
        self._call(self._close()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def stall(self) -> None:
        """From now on, hold every byte, both ways."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        """Deliver what was held, then carry on as a plain proxy."""
        self._loop.call_soon_threadsafe(self._flowing.set)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> "Future[None]":
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _close(self) -> None:
        self._flowing.set()
        if self._server is not None:
            self._server.close()
            # Close the connections too: wait_closed() waits for them.
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            store_in, store_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.close()
            return
        ends = {client_out, store_out}
        self._connections |= ends
        try:
            await asyncio.gather(self._pump(client_in, store_out), self._pump(store_in, client_out))
        finally:
            self._connections -= ends

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await source.read(CHUNK)
                await self._flowing.wait()  # read before a stall began: held, not lost
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                sink.close()


def route_state_store(stack: Stack, service: Service, address: str) -> None:
    """Point the `statestore` of `service`'s sidecar (only that one) at `address`: a
    copy of the stack's resources for it, with that component's `redisHost` changed.
    Call before the stack starts."""
    assert service.sidecar is not None
    own = stack.workdir / f"{service.name}-resources"
    shutil.copytree(stack.resources_dir, own)
    statestore = own / "statestore.yaml"
    documents = [d for d in yaml.safe_load_all(statestore.read_text()) if d]
    for document in documents:
        for item in document["spec"]["metadata"]:
            if item["name"] == "redisHost":
                item["value"] = address
    statestore.write_text(yaml.safe_dump_all(documents))
    command = list(service.sidecar.command)
    command[command.index("--resources-path") + 1] = str(own)
    service.sidecar.command = command
