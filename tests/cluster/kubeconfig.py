"""A kubeconfig pointing at the emulator, for the official client, kopf and the kubectl binary."""

from __future__ import annotations

from pathlib import Path

import yaml


def kubeconfig_dict(server: str, namespace: str = "default") -> dict:
    """Plain HTTP, no credentials: every client accepts this without TLS or auth plugins."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "emulator", "user": {}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator",
                                                      "namespace": namespace}}],
        "current-context": "emulator",
        "preferences": {},
    }


def write_kubeconfig(path: str | Path, server: str, namespace: str = "default") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig_dict(server, namespace), sort_keys=False))
    return path
