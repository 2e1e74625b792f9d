"""`Cluster`: the emulator running on 127.0.0.1 in a background thread, plus its Python API.

The server has its own thread and event loop so that synchronous tests, the official client,
a kopf operator in another thread (with its own loop) and subprocesses (kopf, kubectl) can all
use it at once. Tests read and write objects directly through the same store the API serves.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from . import patches
from .api import Api
from .faults import Faults
from .handler import EmulatorHandler, LocalServer
from .jobs import JobController
from .kubeconfig import write_kubeconfig
from .requestlog import RequestLog
from .resources import Registry, ResourceType
from .selectors import field_selector, label_selector
from .store import Store
from .watch import WatchHub

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01,
             message: str | None = None) -> T:
    """Poll until `predicate()` is truthy and return its value; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


class _Deferred:
    """A callback scheduled on the server loop from any thread, cancellable from any thread."""

    def __init__(self, fn: Callable[[], None], failures: list[str]) -> None:
        self.fn, self.failures = fn, failures
        self.cancelled = False
        self.timer: asyncio.TimerHandle | None = None

    def run(self) -> None:
        if self.cancelled:
            return
        try:
            self.fn()
        except Exception:
            self.failures.append(traceback.format_exc())

    def cancel(self) -> None:
        self.cancelled = True
        if self.timer is not None:
            self.timer.cancel()


class Cluster:
    """An emulated Kubernetes API server. Use as a context manager or start()/stop()."""

    def __init__(self, *, crds: Iterable[dict[str, Any] | str | Path] = (),
                 time_scale: float = 1.0, auto_namespaces: bool = True,
                 history_limit: int = 5000, raw_request_limit: int = 1000,
                 kubeconfig: str | Path | None = None) -> None:
        self.registry = Registry.with_builtins()
        self.store = Store(self.registry, history_limit=history_limit,
                           auto_namespaces=auto_namespaces)
        self.faults = Faults()
        self.requests = RequestLog()
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.failures: list[str] = []  # tracebacks of emulator bugs; should stay empty
        self.jobs = JobController(self.store, self.registry, self._schedule, self.pod_logs,
                                  time_scale)
        self._crds = list(crds)
        self._kubeconfig_path = Path(kubeconfig) if kubeconfig else None
        self._raw_request_limit = raw_request_limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.handler: EmulatorHandler | None = None
        self.hub: WatchHub | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Cluster:
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None or not self.url:
            raise RuntimeError("the emulator did not start") from self._startup_error
        for namespace in ("default", "kube-system"):
            self.create({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": namespace}}, exist_ok=True)
        for crd in self._crds:
            self.load_crd(crd)
        if self._kubeconfig_path is None:
            directory = tempfile.mkdtemp(prefix="k8s-emulator-")
            self._kubeconfig_path = Path(directory) / "kubeconfig"
        write_kubeconfig(self._kubeconfig_path, self.url)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as e:
            self._startup_error = e
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._stop_event = loop, asyncio.Event()
        self.hub = WatchHub(self.store, loop)
        api = Api(self.store, self.registry, lambda: self._hub, self._pod_log,
                  lambda: self.url.removeprefix("http://"))
        self.handler = EmulatorHandler(api, self.faults, self.requests, self._raw_request_limit)
        self.handler.failures = self.failures
        async with self.handler, LocalServer(self.handler) as server:
            server.server.runner._shutdown_timeout = 1.0  # type: ignore[union-attr]
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop_event.wait()
            self.handler.closing = True
            self.hub.drop()
            await asyncio.sleep(0.01)  # let the streams write their last bytes

    @property
    def _hub(self) -> WatchHub:
        assert self.hub is not None
        return self.hub

    def _schedule(self, delay: float, fn: Callable[[], None]) -> _Deferred:
        """Run `fn` on the server loop after `delay` seconds, from whichever thread asks."""
        deferred = _Deferred(fn, self.failures)
        loop = self._loop
        if loop is None:
            return deferred

        def arm() -> None:
            deferred.timer = loop.call_later(max(delay, 0.0), deferred.run)

        if self.hub is not None and threading.get_ident() == self.hub.loop_thread:
            arm()
        else:
            loop.call_soon_threadsafe(arm)
        return deferred

    def _pod_log(self, namespace: str, name: str) -> str | None:
        return self.pod_logs.get((namespace, name))

    # --- connection details -------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def kubeconfig(self) -> Path:
        assert self._kubeconfig_path is not None, "start() the cluster first"
        return self._kubeconfig_path

    @property
    def kmock(self) -> EmulatorHandler:
        """The kmock handler, for kmock's DSL: `cluster.kmock['get /version'] << 500`."""
        assert self.handler is not None
        return self.handler

    def api_client(self) -> Any:
        """An official-client ApiClient for this emulator, without touching global config."""
        import kubernetes.client

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)

    @property
    def open_watches(self) -> int:
        """Streams that have taken their starting state; later changes will reach them."""
        return len(self._hub.watchers)

    def drop_watches(self, abrupt: bool = False) -> int:
        """End all open watch streams (abrupt: cut the TCP connections instead)."""
        hub = self._hub
        return hub.drop(abrupt)

    # --- objects ------------------------------------------------------------------------------

    def resource(self, name: str) -> ResourceType:
        """Resolve "jobs", "Job", "swf", "batch/v1/jobs", "workflows.stepflow.dev"..."""
        return self.registry.find(name)

    def _type_of(self, obj: dict[str, Any]) -> ResourceType:
        return self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))

    def load_crd(self, crd: dict[str, Any] | str | Path) -> list[ResourceType]:
        """Create a CustomResourceDefinition (a dict or a YAML file); its resources are served
        at once. Loading the same CRD twice replaces its definition."""
        if not isinstance(crd, dict):
            crd = yaml.safe_load(Path(crd).read_text())
        rt = self.resource("customresourcedefinitions")
        name = crd["metadata"]["name"]
        existing = self.store.lookup(rt, None, name)
        if existing is None:
            self.store.create(rt, None, crd)
        else:
            body = {**crd, "metadata": {**crd["metadata"],
                                        "resourceVersion": existing["metadata"]["resourceVersion"]}}
            self.store.replace(rt, None, name, body)
        spec = crd["spec"]
        return [t for t in self.registry.all()
                if (t.group, t.plural) == (spec["group"], spec["names"]["plural"])]

    def create(self, obj: dict[str, Any], namespace: str | None = None, *,
               exist_ok: bool = False) -> dict[str, Any]:
        rt = self._type_of(obj)
        namespace = namespace or obj.get("metadata", {}).get("namespace") or "default"
        if exist_ok:
            found = self.store.lookup(rt, namespace, obj.get("metadata", {}).get("name", ""))
            if found is not None:
                return patches.clone(found)
        return patches.clone(self.store.create(rt, namespace, obj))

    def get(self, resource: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """A copy of the object, or None if it does not exist."""
        found = self.store.lookup(self.resource(resource), namespace, name)
        return patches.clone(found) if found is not None else None

    def objects(self, resource: str, namespace: str | None = None, *,
                labels: str | dict[str, str] | None = None,
                fields: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored objects, e.g. objects("jobs", "default", labels={"a": "b"})."""
        if isinstance(labels, dict):
            labels = ",".join(f"{k}={v}" for k, v in labels.items())
        by_labels, by_fields = label_selector(labels), field_selector(fields)
        items, _ = self.store.list(self.resource(resource), namespace,
                                   lambda obj: by_labels(obj) and by_fields(obj))
        return [patches.clone(obj) for obj in items]

    def patch(self, resource: str, name: str, patch: Any, namespace: str = "default", *,
              subresource: str | None = None,
              content_type: str = patches.MERGE) -> dict[str, Any]:
        rt = self.resource(resource)
        return patches.clone(self.store.patch(rt, namespace, name, patch, content_type,
                                              subresource))

    def delete(self, resource: str, name: str, namespace: str = "default", *,
               propagation: str | None = None) -> bool:
        """Delete; True if the object is gone, False if finalizers still hold it."""
        return self.store.delete(self.resource(resource), namespace, name,
                                 propagation=propagation)[1]

    def events(self, namespace: str | None = None,
               involved: str | None = None) -> list[dict[str, Any]]:
        """Core v1 Events, optionally only those about the object named `involved`."""
        items = self.objects("events", namespace)
        return [e for e in items
                if involved is None or e.get("involvedObject", {}).get("name") == involved]

    def set_pod_log(self, name: str, text: str, namespace: str = "default") -> None:
        self.pod_logs[namespace, name] = text

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0,
                 message: str | None = None) -> T:
        return wait_for(predicate, timeout, message=message)
