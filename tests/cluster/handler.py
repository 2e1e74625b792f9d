"""The kmock handler: kmock serves HTTP and keeps its request DSL; the emulator answers.

kmock contributes the aiohttp server (`kmock.Server`), the `kmock.Request` records and the DSL of
ad-hoc reactions (`cluster.kmock['get', re.compile('/apis/batch/.*')] << 500`), which are
consulted before the emulator. What kmock 0.8 cannot do is replaced: its URL parser (crashes on
/api/v1/namespaces), its in-memory objects (no uid, resourceVersion, 201, 409, selectors...), and
its unbounded request list (trimmed to `raw_request_limit`, since request bodies add up).
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from types import TracebackType
from typing import Any

import aiohttp
import aiohttp.web
import kmock

from . import errors, routes
from .api import Api, error_response
from .faults import Faults
from .requestlog import Record, RequestLog

ACTIONS = {"list": kmock.action.LIST, "watch": kmock.action.WATCH, "get": kmock.action.FETCH,
           "create": kmock.action.CREATE, "patch": kmock.action.UPDATE,
           "update": kmock.action.UPDATE, "delete": kmock.action.DELETE}


class EmulatorHandler(kmock.RawHandler):
    def __init__(self, api: Api, faults: Faults, log: RequestLog,
                 raw_request_limit: int = 1000) -> None:
        super().__init__()
        self.api, self.faults, self.log = api, faults, log
        self.raw_request_limit = raw_request_limit
        self.closing = False
        self.failures: list[str] = []  # tracebacks of emulator bugs (answered as 500)

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw.read()
        route = routes.parse(raw.method, raw.path, raw.query)
        record = self.log.start(route, raw.headers.get("User-Agent", ""))
        request = self._remember(raw, body, route)
        started = time.perf_counter()
        try:
            response = await self._respond(request, route, raw, body, record)
        except errors.ApiError as e:
            response = error_response(e)
        except Exception as e:
            self.failures.append(traceback.format_exc())
            response = error_response(errors.ApiError(500, f"emulator failure: {e!r}"))
        finally:
            record.duration = time.perf_counter() - started
        record.status = response.status
        return response

    async def _respond(self, request: kmock.Request, route: routes.Route,
                       raw: aiohttp.web.BaseRequest, body: bytes,
                       record: Record) -> aiohttp.web.StreamResponse:
        if self.closing:
            raise errors.ApiError(503, "the emulator is shutting down")
        delay, error = self.faults.take(route)
        if delay:
            await asyncio.sleep(delay)
        if error is not None:
            record.fault = True
            raise error
        if self._payloads:  # reactions added through the kmock DSL go first
            try:
                return await super()._handle(request)
            except NotImplementedError:
                pass
        return await self.api.serve(route, raw, body)

    def _remember(self, raw: aiohttp.web.BaseRequest, body: bytes,
                  route: routes.Route) -> kmock.Request:
        """Record the request the kmock way, so that kmock's views and DSL filters work."""
        try:
            data: Any = json.loads(body) if body else None
        except ValueError:
            data = None
        resource = kmock.resource(route.group, route.version, route.plural) \
            if route.is_resource else None
        request = kmock.Request(
            id=len(self._requests), method=raw.method, url=raw.url, params=dict(raw.query),
            headers=dict(raw.headers), body=body, text=body.decode("utf-8", "replace"),
            data=data, action=ACTIONS.get(route.verb), resource=resource,
            namespace=route.namespace, name=route.name, subresource=route.subresource,
            raw_request=raw)
        self._requests.append(request)
        if len(self._requests) > self.raw_request_limit:
            del self._requests[: len(self._requests) - self.raw_request_limit]
        return request


class LocalServer(kmock.Server):
    """kmock.Server without its DNS interceptor.

    The interceptor patches aiohttp's resolver class for the whole process and insists on being
    exited in LIFO order; emulators started and stopped in different threads (a fixture plus a
    benchmark's own Cluster) cannot promise that, and a failed exit left the port open. Clients
    connect to 127.0.0.1:<port> directly, so no interception is needed.
    """

    async def __aenter__(self) -> LocalServer:
        self._managed_server = self._server_cls(self.handler, host=self._host, port=self._port)
        await self._managed_server.__aenter__()
        self._managed_client = aiohttp.ClientSession(self._managed_server.make_url("/"))
        self.handler.servers.append(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc_value: BaseException | None, traceback: TracebackType | None) -> None:
        self.handler.servers.remove(self)
        if self._managed_client is not None:
            await self._managed_client.close()
        if self._managed_server is not None:
            await self._managed_server.__aexit__(exc_type, exc_value, traceback)
        self._managed_client = self._managed_server = None
