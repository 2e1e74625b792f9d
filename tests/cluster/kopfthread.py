"""Run an unmodified kopf operator in a thread (with its own event loop) against a Cluster.

kopf logs in through a login handler that returns the emulator's URL, so nothing global is
touched (no KUBECONFIG, no kubernetes.config.load_kube_config()). For a subprocess, pass
`KUBECONFIG=cluster.kubeconfig` instead; kopf's default login reads it through the official client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Collection, Iterator
from typing import Any

import kopf

from .cluster import Cluster

LOGIN_ID = "cluster-emulator-login"


def _add_login(registry: kopf.OperatorRegistry, cluster: Cluster) -> None:
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=cluster.url, insecure=True, default_namespace="default")

    # A registry reused across tests keeps its first login handler; re-point it at this cluster.
    for handler in registry._activities.get_all_handlers():
        if handler.id == LOGIN_ID:
            object.__setattr__(handler, "fn", login)
            return
    kopf.on.login(registry=registry, id=LOGIN_ID)(login)


def fast_settings(settings: kopf.OperatorSettings | None = None) -> kopf.OperatorSettings:
    """Settings that keep tests quick: no Events for log lines, short backoffs and exits."""
    settings = settings or kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.watching.reconnect_backoff = 0.1
    settings.queueing.idle_timeout = 0.5
    settings.queueing.exit_timeout = 0.5
    return settings


@contextlib.contextmanager
def run_operator(cluster: Cluster, registry: kopf.OperatorRegistry, *,
                 settings: kopf.OperatorSettings | None = None,
                 namespaces: Collection[str] = (), clusterwide: bool | None = None,
                 memo: Any = None, watching: Collection[str] = ("workflows",),
                 timeout: float = 10.0) -> Iterator[threading.Thread]:
    """Start kopf.operator() in a thread; stop it (and wait) when the block exits.

    kopf raises its ready flag before it has listed anything, so this also waits until kopf has
    opened a watch on each resource (plural) in `watching`: only then are creations noticed.
    """
    _add_login(registry, cluster)
    ready, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    clusterwide = not namespaces if clusterwide is None else clusterwide

    def main() -> None:
        try:
            asyncio.run(kopf.operator(
                registry=registry, settings=settings or fast_settings(), standalone=True,
                clusterwide=clusterwide, namespaces=namespaces, memo=memo,
                ready_flag=ready, stop_flag=stop))
        except BaseException as e:
            errors.append(e)
            ready.set()

    thread = threading.Thread(target=main, name="kopf-operator", daemon=True)
    thread.start()
    if not ready.wait(timeout) or errors:
        stop.set()
        raise RuntimeError(f"kopf did not start: {errors}")
    try:
        for plural in watching:
            cluster.wait_for(lambda p=plural: cluster.requests.count(verb="watch", resource=p),
                             timeout, message=f"kopf never watched {plural}")
        yield thread
    finally:
        stop.set()
        thread.join(timeout)
