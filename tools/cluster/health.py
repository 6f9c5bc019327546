"""Whether the cluster is up: its daemons run, the API server is ready, the node is Ready
and the registry answers."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

from .daemons import DAEMONS, owned_pid
from .layout import API_URL, KUBECONFIG, NODE_NAME, PKI, REGISTRY_LISTEN


def api_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return context


def api_get(path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(API_URL + path)  # noqa: S310 - our own API server
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=api_context()) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback only
        status: int = response.status
        return 200 <= status < 300


def node_ready() -> bool:
    status, body = api_get(f"/api/v1/nodes/{NODE_NAME}")
    if status != 200:
        return False
    conditions = json.loads(body)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def healthy() -> bool:
    if any(owned_pid(name) is None for name in DAEMONS) or not KUBECONFIG.exists():
        return False
    try:
        status, _ = api_get("/readyz")
        return status == 200 and node_ready() and http_ok(f"http://{REGISTRY_LISTEN}/v2/")
    except OSError:
        return False
