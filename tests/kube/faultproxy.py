"""A fault proxy between the operator and the real kube-apiserver of this tier.

A healthy API server does not answer 409, 429 or 5xx on demand, nor drop a watch when a test
wants it to. This proxy does, and passes everything else through unchanged, watch streams
included:

    with FaultProxy(plane.url, plane.pki / "ca.crt") as proxy:
        start_operator(kubeconfig=proxy.kubeconfig(operator_kubeconfig, tmp_path / "proxied"))
        proxy.fail(500, "patch workflows/status", times=3)
        proxy.fail(429, "create jobs", times=2, retry_after=0.2)
        proxy.delay(2.0, "list pods", times=1)
        proxy.cut_watches(abrupt=True)          # every open watch ends; returns how many
        proxy.count("create jobs", status=201)  # what the operator asked, and how it went

A request is named the way RBAC and the audit log name it: ``verb resource[/subresource]``
(``watch pods``, ``patch workflows/status``). The proxy listens on plain HTTP on 127.0.0.1
only and forwards to the API server over TLS, verified against the tier's CA; the client's
``Authorization`` header travels with the request, so the operator is still judged by the real
authorizer as deploy/'s ServiceAccount, and its requests are still in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from yarl import URL

# Hop-by-hop headers (RFC 9110, 7.6.1) and the ones aiohttp sets itself for what it sends.
NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length"}
)
REASONS = {409: "Conflict", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           502: "BadGateway", 503: "ServiceUnavailable", 504: "Timeout"}
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")


@dataclass(frozen=True)
class Call:
    """One request as the proxy saw it, and what it was answered."""

    verb: str
    resource: str  # with its subresource: "workflows/status"
    namespace: str | None
    name: str | None
    status: int
    fault: bool  # answered by the proxy, never seen by the API server

    @property
    def what(self) -> str:
        return f"{self.verb} {self.resource}"


def describe(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str | None, str | None]:
    """``(verb, resource[/subresource], namespace, name)`` of an API request, as RBAC names
    them. Paths outside /api and /apis (discovery, /version) are their own resource."""
    parts = [p for p in path.split("/") if p]
    prefix = {"api": 2, "apis": 3}.get(parts[0] if parts else "", len(parts))
    rest = parts[prefix:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return method.lower(), path, namespace, None
    name = rest[1] if len(rest) > 1 else None
    resource = "/".join([rest[0], *rest[2:3]])
    if method == "GET":
        verb = "watch" if query.get("watch") in ("true", "1") else "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = VERBS.get(method, method.lower())
    return verb, resource, namespace, name


@dataclass
class Rule:
    what: str  # "verb resource[/subresource]"
    times: int | None  # None: until cleared
    status: int | None = None  # None: a delay only
    seconds: float = 0.0
    retry_after: float | None = None
    message: str | None = None

    def reply(self) -> web.Response:
        """A ``Status`` body, as the API server writes its errors: clients read its reason."""
        assert self.status is not None
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message or f"injected by the fault proxy: HTTP {self.status}",
                "reason": REASONS.get(self.status, "Unknown"), "code": self.status}
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
            body["details"] = {"retryAfterSeconds": max(1, round(self.retry_after))}
        return web.Response(status=self.status, text=json.dumps(body), headers=headers,
                            content_type="application/json")


@dataclass(eq=False)
class _Watch:
    """An open watch stream, and how it is to end when cut."""

    what: str
    upstream: aiohttp.ClientResponse
    abrupt: bool = False


class FaultProxy:
    """The proxy, serving from a thread of its own; a test calls it from its own thread."""

    def __init__(self, upstream: str, ca: Path):
        self.upstream = upstream  # https://127.0.0.1:<port>
        self.ca = ca
        self.calls: list[Call] = []
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._watches: set[_Watch] = set()  # touched only on the proxy's loop
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    # --- what a test asks for ------------------------------------------------------------------

    def fail(self, status: int, what: str, times: int | None = 1, retry_after: float | None = None,
             message: str | None = None) -> None:
        """Answer the next ``times`` requests ``what`` names with ``status`` (None: all of them)."""
        self._add(Rule(what, times, status, retry_after=retry_after, message=message))

    def delay(self, seconds: float, what: str, times: int | None = None) -> None:
        """Hold such requests for ``seconds``, then pass them on."""
        self._add(Rule(what, times, seconds=seconds))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def cut_watches(self, what: str | None = None, abrupt: bool = False) -> int:
        """End every open watch (or those ``what`` names, e.g. ``watch pods``) and say how many.
        Gracefully, as an API server ends one at its timeout; ``abrupt``: the TCP connection is
        cut mid-stream instead, as when a load balancer or the network drops it."""
        return asyncio.run_coroutine_threadsafe(self._cut(what, abrupt), self._loop).result(10)

    def count(self, what: str, status: int | None = None, fault: bool | None = None) -> int:
        return sum(1 for c in list(self.calls) if c.what == what and status in (None, c.status)
                   and fault in (None, c.fault))

    def kubeconfig(self, credentials: Path, path: Path) -> Path:
        """``credentials`` (a kubeconfig holding a token) with this proxy as its server."""
        config = yaml.safe_load(credentials.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"] = {"server": self.url}
        path.write_text(yaml.safe_dump(config))
        return path

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the proxy ---------------------------------------------------------------------------------

    def _add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _take(self, what: str) -> tuple[float, Rule | None]:
        """The delay and the error (if any) the rules hold for this request, counted down."""
        seconds, error = 0.0, None
        with self._lock:
            for rule in self._rules:
                if rule.what != what or (error is not None and rule.status is not None):
                    continue
                if rule.times is not None:
                    rule.times -= 1
                seconds += rule.seconds
                error = rule if rule.status is not None else error
            self._rules = [r for r in self._rules if r.times is None or r.times > 0]
        return seconds, error

    async def _serve(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca))
        # auto_decompress off: a gzipped answer passes through as it came, with its header.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=0), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def _shutdown(self) -> None:
        await self._cut(None, abrupt=False)
        await self._runner.cleanup()
        await self._session.close()

    async def _cut(self, what: str | None, abrupt: bool) -> int:
        cut = [w for w in self._watches if what in (None, w.what)]
        for watch in cut:
            watch.abrupt = abrupt
            watch.upstream.close()  # ends the relay loop of _handle
        return len(cut)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        verb, resource, namespace, name = describe(request.method, request.path, dict(request.query))
        what = f"{verb} {resource}"
        seconds, error = self._take(what)
        if seconds:
            await asyncio.sleep(seconds)
        if error is not None:
            self.calls.append(Call(verb, resource, namespace, name, error.status or 0, True))
            return error.reply()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED}
        body = await request.read()
        # The path as it came, still percent-encoded; and no header the caller did not send.
        url = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(request.method, url, headers=headers, data=body or None,
                                         allow_redirects=False, skip_auto_headers=AUTO_HEADERS) as upstream:
            self.calls.append(Call(verb, resource, namespace, name, upstream.status, False))
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in NOT_FORWARDED})
            await response.prepare(request)
            watch = _Watch(what, upstream)
            if verb == "watch":
                self._watches.add(watch)
            try:
                return await self._relay(upstream, response, request, watch)
            finally:
                self._watches.discard(watch)

    async def _relay(self, upstream: aiohttp.ClientResponse, response: web.StreamResponse,
                     request: web.Request, watch: _Watch) -> web.StreamResponse:
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, ConnectionError):
            pass  # a cut watch, the API server gone, or the client gone
        if watch.abrupt and request.transport is not None:
            request.transport.abort()  # no terminating chunk: the client sees a broken stream
            return response
        with contextlib.suppress(ConnectionError):  # the client may have gone already
            await response.write_eof()
        return response

