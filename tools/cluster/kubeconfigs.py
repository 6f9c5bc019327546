"""Reaching the cluster's API as a client: the kubeconfigs (certificates inline) and
kubectl with the admin's."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from .binaries import Tools
from .commands import run
from .layout import API_URL, CONTEXT, KUBECONFIG, PKI


def kubeconfig(stem: str, *, server: str = API_URL, context: str = CONTEXT) -> dict[str, Any]:
    """A kubeconfig with the certificates inline (it can be copied anywhere)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    user = f"{context}-{stem}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": b64(PKI / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(PKI / f"{stem}.crt"),
                    "client-key-data": b64(PKI / f"{stem}.key"),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }


def kubectl(tools: Tools, *args: str, input_text: str | None = None) -> str:
    return run(
        [tools.k8s("kubectl"), "--kubeconfig", KUBECONFIG, "--context", CONTEXT, *args],
        input_text=input_text,
    ).stdout
