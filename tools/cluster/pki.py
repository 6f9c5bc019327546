"""The cluster's certificates and service-account keys, made once with openssl under PKI:
a CA, the API server's serving certificate and a client certificate per component."""

from __future__ import annotations

import shutil
from pathlib import Path

from .commands import log, run
from .layout import API_SERVICE_IP, NODE_IP, NODE_NAME, PKI

CLIENT_CERTS = {
    # file stem: (common name, organization)
    "admin": ("task-platform-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "proxy": ("system:kube-proxy", ""),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}


def openssl(*args: str | Path) -> None:
    run(["openssl", *args], quiet=False)


def sign(stem: str, subject: str, usage: str, san: str = "") -> None:
    key, csr, crt = PKI / f"{stem}.key", PKI / f"{stem}.csr", PKI / f"{stem}.crt"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", subject)  # fmt: skip
    ext = PKI / f"{stem}.ext"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    openssl("x509", "-req", "-in", csr, "-CA", PKI / "ca.crt", "-CAkey", PKI / "ca.key",
            "-CAcreateserial", "-days", "365", "-out", crt, "-extfile", ext)  # fmt: skip
    csr.unlink()
    ext.unlink()
    key.chmod(0o600)


def ensure_pki() -> None:
    if (PKI / "done").exists():
        return
    log("generating certificates and service-account keys")
    shutil.rmtree(PKI, ignore_errors=True)
    PKI.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", PKI / "ca.key", "-out", PKI / "ca.crt",
            "-subj", "/CN=task-platform-local-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")  # fmt: skip
    san = ",".join(
        [
            f"IP:{NODE_IP}",
            f"IP:{API_SERVICE_IP}",
            "IP:127.0.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    sign("apiserver", "/CN=kube-apiserver", "serverAuth", san)
    for stem, (cn, org) in CLIENT_CERTS.items():
        sign(stem, (f"/O={org}" if org else "") + f"/CN={cn}", "clientAuth")
    openssl("genrsa", "-out", PKI / "sa.key", "2048")
    openssl("rsa", "-in", PKI / "sa.key", "-pubout", "-out", PKI / "sa.pub")
    (PKI / "done").write_text("")
