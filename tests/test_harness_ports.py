"""The harness's ports: a port it hands out must not be one the kernel may give an
outgoing connection before the process that wants it has bound it (a bench run lost a
sidecar to "could not listen on any endpoint" that way)."""

from harness.processes import _ephemeral_range, free_port


def test_free_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert not [port for port in ports if low <= port <= high]
    assert len(set(ports)) == len(ports)
