"""A TCP proxy between a sidecar and its app that, when told to, resets the connection
carrying the next request to one path, at a chosen point of that exchange:

- `before-request`: the request is read from the sidecar and never forwarded;
- `after-request`: the request is forwarded whole, the app's answer is read (and
  logged) but never relayed;
- `mid-response`: the app's status line, headers and half its body are relayed, then
  the connection is reset.

A reset is SO_LINGER 0 then close: the sidecar reads ECONNRESET, as it does when the
app's server aborts a connection. Other requests, before and after, are relayed as they
are, message by message (HTTP/1.1 framing, keep-alive kept).

It runs as a process of its own (`python -m harness.reset_proxy --listen P --target P
--control P`), so that the stack starts it, logs it and stops it like its other
processes (Stack's `reset_proxies`). A test arms it over the control port: one line
`arm <point> <path>`, answered `armed` (`ProxyProcess.arm`). Each reset is logged as
`RESET <point> POST <path> ...`, each POST relayed as `relayed POST <path> ...`.
"""

import argparse
import asyncio
import contextlib
import json
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from harness.processes import ManagedProcess, free_port

ResetPoint = Literal["before-request", "after-request", "mid-response"]
RESET_POINTS: tuple[ResetPoint, ...] = get_args(ResetPoint)
# After the partial response of `mid-response`: long enough for the sidecar to read it
# (a reset can make the receiver drop data it has not read yet), so that it really is
# mid-response and not another reset before the answer.
PARTIAL_RESPONSE_SETTLE = 0.2


@dataclass(frozen=True)
class Message:
    """One HTTP/1.1 message as it came, and what the proxy needs to know of it."""

    head: bytes
    body: bytes  # as framed on the wire (chunked stays chunked)
    start_line: str
    headers: dict[str, str]  # lower-case names; the last value of a repeated one

    @property
    def raw(self) -> bytes:
        return self.head + self.body

    @property
    def payload(self) -> bytes:
        """The body without its chunked framing, if it has one."""
        if "chunked" not in self.headers.get("transfer-encoding", "").lower():
            return self.body
        payload, rest = bytearray(), self.body
        while True:
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                return bytes(payload)
            payload += rest[:size]
            rest = rest[size + 2 :]

    @property
    def method(self) -> str:
        return self.start_line.split(" ", 2)[0]

    @property
    def path(self) -> str:
        return self.start_line.split(" ", 2)[1].split("?", 1)[0]

    @property
    def status(self) -> int:
        return int(self.start_line.split(" ", 2)[1])


async def read_head(reader: asyncio.StreamReader) -> tuple[bytes, str, dict[str, str]] | None:
    """The start line and headers; None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return head, lines[0], headers


async def read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], *, until_close: bool
) -> bytes:
    """The body as framed: by Content-Length, chunked, or (a response without either)
    up to the end of the connection."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await read_chunked(reader)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read() if until_close else b""


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    framed = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        framed += size_line
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        framed += await reader.readexactly(size + 2)
    while True:  # trailers, then the empty line that ends the message
        line = await reader.readuntil(b"\r\n")
        framed += line
        if line == b"\r\n":
            return bytes(framed)


async def read_request(reader: asyncio.StreamReader) -> Message | None:
    head = await read_head(reader)
    if head is None:
        return None
    raw_head, start_line, headers = head
    body = await read_body(reader, headers, until_close=False)
    return Message(raw_head, body, start_line, headers)


async def read_response(reader: asyncio.StreamReader, request: Message) -> Message:
    while True:
        head = await read_head(reader)
        if head is None:
            raise ConnectionError("the app closed the connection before answering")
        raw_head, start_line, headers = head
        status = int(start_line.split(" ", 2)[1])
        if status >= 200:
            break
    bodiless = request.method == "HEAD" or status in (204, 304)
    body = b"" if bodiless else await read_body(reader, headers, until_close=True)
    return Message(raw_head, body, start_line, headers)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def describe(request: Message) -> str:
    """The request line, and the task of a task event (its CloudEvent's data)."""
    summary = f"{request.method} {request.path}"
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        event = json.loads(request.payload)
        data = event.get("data") or {}
        summary += f" event={event.get('id')} {data.get('event_type')} task={data.get('task_id')}"
    return summary


def log(line: str) -> None:
    print(line, flush=True)


def parse_arm(line: str) -> tuple[ResetPoint, str] | None:
    """`arm <point> <path>` as its point and path; None for anything else."""
    match line.split():
        case ["arm", word, path]:
            for point in RESET_POINTS:
                if point == word:
                    return point, path
    return None


class ResetProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        # What to reset next: (point, path), taken by the first request to that path.
        self._armed: list[tuple[ResetPoint, str]] = []

    def arm(self, point: ResetPoint, path: str) -> None:
        self._armed.append((point, path))

    def _take(self, request: Message) -> ResetPoint | None:
        for armed in self._armed:
            point, path = armed
            if request.method == "POST" and request.path == path:
                self._armed.remove(armed)
                return point
        return None

    async def serve_client(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            reset(client_writer)  # the app is down (restarting): refuse as it would
            return
        try:
            await self._relay(client_reader, client_writer, upstream_reader, upstream_writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            reset(client_writer)
        finally:
            upstream_writer.close()
            client_writer.close()

    async def _relay(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        """Request after request on one connection, until either side ends it or a reset
        armed for one of them is done."""
        while (request := await read_request(client_reader)) is not None:
            point = self._take(request)
            if point == "before-request":
                reset(client_writer)
                log(f"RESET before-request {describe(request)}: not forwarded")
                return
            upstream_writer.write(request.raw)
            await upstream_writer.drain()
            if point == "after-request":
                reset(client_writer)
                response = await read_response(upstream_reader, request)
                log(
                    f"RESET after-request {describe(request)}: the app answered "
                    f"{response.status} {response.payload!r}, not relayed"
                )
                return
            response = await read_response(upstream_reader, request)
            if point == "mid-response":
                client_writer.write(response.head + response.body[: len(response.body) // 2])
                await client_writer.drain()
                await asyncio.sleep(PARTIAL_RESPONSE_SETTLE)
                reset(client_writer)
                log(
                    f"RESET mid-response {describe(request)}: the app answered "
                    f"{response.status} {response.payload!r}, relayed up to half its body"
                )
                return
            client_writer.write(response.raw)
            await client_writer.drain()
            if request.method == "POST":  # deliveries and invocations, not the probes
                log(f"relayed {describe(request)}: {response.status} {response.payload!r}")
            if response.headers.get("connection", "").lower() == "close":
                return

    async def serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """`arm <point> <path>` lines, each answered `armed` or `error: ...`."""
        while line := (await reader.readline()).decode().strip():
            if (command := parse_arm(line)) is not None:
                point, path = command
                self.arm(point, path)
                log(f"armed: {point} on the next POST {path}")
                writer.write(b"armed\n")
            else:
                writer.write(f"error: expected `arm <{'|'.join(RESET_POINTS)}> <path>`\n".encode())
            await writer.drain()
        writer.close()


@dataclass
class ProxyProcess:
    """The proxy as one of a stack's processes: the sidecar calls `listen_port`, the
    proxy relays to `target_port` (the app's)."""

    name: str
    target_port: int
    log_dir: Path
    listen_port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    process: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.process = ManagedProcess(
            self.name,
            [
                sys.executable, "-m", "harness.reset_proxy",
                "--listen", str(self.listen_port),
                "--target", str(self.target_port),
                "--control", str(self.control_port),
            ],
            self.log_dir / f"{self.name}.log",
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    async def arm(self, point: ResetPoint, path: str) -> None:
        """Reset the connection of the next POST to `path` at `point`."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.control_port)
        try:
            writer.write(f"arm {point} {path}\n".encode())
            await writer.drain()
            answer = (await reader.readline()).decode().strip()
        finally:
            writer.close()
            await writer.wait_closed()
        if answer != "armed":
            raise RuntimeError(f"{self.name} refused `arm {point} {path}`: {answer}")


async def wait_for_port(port: int) -> None:
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


async def main() -> None:
    parser = argparse.ArgumentParser(description="Relays to an app; resets when told to.")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    args = parser.parse_args()
    proxy = ResetProxy("127.0.0.1", args.target)
    # Listen only once the app does: daprd takes an open app port for a started app.
    await wait_for_port(args.target)
    relay = await asyncio.start_server(proxy.serve_client, "127.0.0.1", args.listen)
    control = await asyncio.start_server(proxy.serve_control, "127.0.0.1", args.control)
    log(f"relaying 127.0.0.1:{args.listen} -> 127.0.0.1:{args.target}; control on {args.control}")
    async with relay, control:
        await asyncio.gather(relay.serve_forever(), control.serve_forever())


if __name__ == "__main__":
    asyncio.run(main())
