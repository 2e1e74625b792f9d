"""The aiohttp application of ``stepflow ui``: static pages, JSON, and a server-sent event stream.

Every route is a GET: the UI has no way to change anything, and the ``Api`` it reads with
refuses writes as well. Pages are plain files under ``static/``, shipped in the package, so
the UI needs no network and no Node.js at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from stepflow import __version__
from stepflow.palette import stylesheet
from stepflow.ui.model import Key, changed_steps, detail, expansion_key, header, step_views, summary
from stepflow.ui.watch import CLOSE, CONNECTION, Hub

log = logging.getLogger("stepflow.ui")

STATIC = Path(__file__).resolve().parent / "static"
HEARTBEAT_SECONDS = 15
LOG_LINES = 200

LogReader = Callable[[str, str, int], str]  # (namespace, job, lines) -> the newest pod's log tail

HUB = web.AppKey("hub", Hub)
LOGS = web.AppKey("logs", object)
SCOPE = web.AppKey("scope", str)


def make_app(hub: Hub, read_logs: LogReader, scope: str) -> web.Application:
    """``scope``: the namespace shown, or "" for all namespaces."""
    app = web.Application(middlewares=[_security_headers])
    app[HUB], app[LOGS], app[SCOPE] = hub, read_logs, scope
    app.router.add_get("/", _index)
    app.router.add_get("/palette.css", _palette)
    app.router.add_get("/api/meta", _meta)
    app.router.add_get("/api/workflows", _list)
    app.router.add_get("/api/workflows/{namespace}/{name}", _workflow)
    app.router.add_get("/api/workflows/{namespace}/{name}/steps/{step}/logs", _logs)
    app.router.add_get("/api/events", _events)
    app.router.add_static("/static", STATIC, follow_symlinks=False)
    app.on_shutdown.append(_close_streams)
    return app


async def _close_streams(app: web.Application) -> None:
    """Open event streams end at once, so that stopping the server does not wait for them."""
    app[HUB].close()


@web.middleware
async def _security_headers(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """Nothing but this server may be loaded, framed or connected to by the pages."""
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _palette(request: web.Request) -> web.Response:
    """The phase colours as CSS custom properties, from the palette the CLI's graphs and timeline
    use: ``style.css`` only refers to them, so the colours are written down once, in Python."""
    return web.Response(text=stylesheet(), content_type="text/css", headers={"Cache-Control": "no-cache"})


async def _meta(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response(
        {
            "version": __version__,
            "scope": request.app[SCOPE],
            "connected": hub.connected,
        }
    )


async def _synced(hub: Hub) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(hub.synced.wait(), timeout=10)


async def _list(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    await _synced(hub)
    rows = [summary(obj) for _, obj in sorted(hub.workflows.items())]
    return web.json_response({"workflows": rows, "connected": hub.connected})


def _found(request: web.Request) -> dict[str, Any]:
    key = (request.match_info["namespace"], request.match_info["name"])
    obj = request.app[HUB].workflows.get(key)
    if obj is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no workflow {key[0]}/{key[1]}"}), content_type="application/json"
        )
    return obj


async def _workflow(request: web.Request) -> web.Response:
    await _synced(request.app[HUB])
    return web.json_response(detail(_found(request)))


async def _logs(request: web.Request) -> web.Response:
    obj = _found(request)
    step = request.match_info["step"]
    entry = ((obj.get("status") or {}).get("steps") or {}).get(step)
    if entry is None:
        raise web.HTTPNotFound(text=f"no step {step}")
    if not entry.get("jobName"):
        return web.Response(text=f"({step} has not started: no logs yet)")
    try:
        lines = min(max(int(request.query.get("lines", LOG_LINES)), 1), 5000)
    except ValueError:
        raise web.HTTPBadRequest(text="lines must be a number") from None
    read_logs = request.app[LOGS]
    loop = asyncio.get_running_loop()
    try:
        text = await loop.run_in_executor(
            None, read_logs, obj["metadata"]["namespace"], entry["jobName"], lines
        )
    except Exception as exc:  # refused (no pods/log permission), the pod gone, the API unreachable
        log.warning("reading the log of %s failed: %s", entry["jobName"], str(exc)[:300])
        return web.Response(status=502, text=f"(cannot read the log: {str(exc)[:300]})")
    return web.Response(text=text, headers={"Cache-Control": "no-store"})


async def _events(request: web.Request) -> web.StreamResponse:
    """The live stream: the list's rows, or one workflow's step changes (``?workflow=ns/name``)."""
    hub = request.app[HUB]
    wanted = request.query.get("workflow", "")
    namespace, _, name = wanted.partition("/")
    stream: _ListEvents | _WorkflowEvents = (
        _WorkflowEvents(hub, (namespace, name)) if name else _ListEvents(hub)
    )
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    changes = hub.subscribe()

    async def send(events: list[tuple[str, Any]]) -> None:
        for event, data in events:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    try:
        await _synced(hub)
        await send(stream.first())
        while (change := await changes.get(HEARTBEAT_SECONDS)) is None or change[1] != CLOSE:
            if change is None:  # a quiet spell: a write finds a page that has gone
                await send([("heartbeat", {})])
            elif change[1] == CONNECTION:
                await send([("connection", {"connected": hub.connected})])
            else:
                await send(stream.changed(*change))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(changes)
    return response


class _ListEvents:
    """The list page: every row at first, then each changed or deleted row."""

    def __init__(self, hub: Hub):
        self.hub = hub

    def first(self) -> list[tuple[str, Any]]:
        rows = [summary(obj) for _, obj in sorted(self.hub.workflows.items())]
        return [("snapshot", {"workflows": rows, "connected": self.hub.connected, "now": time.time()})]

    def changed(self, kind: str, key: Key) -> list[tuple[str, Any]]:
        obj = self.hub.workflows.get(key)
        if kind == "DELETED" or obj is None:
            return [("deleted", {"namespace": key[0], "name": key[1]})]
        return [("workflow", summary(obj))]


class _WorkflowEvents:
    """A workflow page: the whole page once (and again when the spec changes, or when a step
    fans out over a list read from an output), then only the steps that changed since the last
    event."""

    def __init__(self, hub: Hub, key: Key):
        self.hub, self.key = hub, key
        self.sent_generation: Any = object()
        self.sent_graph: dict[str, Any] = {"nodes": []}
        self.sent_expansions: tuple[int, ...] = ()
        self.sent_steps: dict[str, Any] = {}

    def first(self) -> list[tuple[str, Any]]:
        return self.changed("MODIFIED", self.key)

    def changed(self, kind: str, key: Key) -> list[tuple[str, Any]]:
        if key != self.key:
            return []
        obj = self.hub.workflows.get(key)
        if obj is None:
            self.sent_generation, self.sent_steps = object(), {}
            return [("deleted", {"namespace": key[0], "name": key[1]})]
        status = obj.get("status") or {}
        if (obj["metadata"].get("generation") != self.sent_generation
                or expansion_key(status, self.sent_graph) != self.sent_expansions):
            page = detail(obj)
            self.sent_generation, self.sent_steps = page["generation"], page["steps"]
            self.sent_graph, self.sent_expansions = page["graph"], expansion_key(status, page["graph"])
            return [("page", {**page, "now": time.time()})]
        steps = step_views(status)
        changed = changed_steps(self.sent_steps, steps)
        self.sent_steps = steps
        return [("steps", {**header(obj), "steps": changed, "now": time.time()})]
