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
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from stepflow import __version__
from stepflow.timeline import PHASE_FILLS
from stepflow.ui.model import Key, changed_steps, detail, header, step_views, summary
from stepflow.ui.watch import Changes, Hub

log = logging.getLogger("stepflow.ui")

STATIC = Path(__file__).resolve().parent / "static"
HEARTBEAT_SECONDS = 15
LOG_LINES = 200
LOG_BYTES = 256 * 1024

LogReader = Callable[[str, str, int], str]  # (namespace, job, lines) -> the newest pod's log tail

HUB = web.AppKey("hub", Hub)
LOGS = web.AppKey("logs", object)
SCOPE = web.AppKey("scope", str)


def make_app(hub: Hub, read_logs: LogReader, scope: str) -> web.Application:
    """``scope``: the namespace shown, or "" for all namespaces."""
    app = web.Application(middlewares=[_security_headers])
    app[HUB], app[LOGS], app[SCOPE] = hub, read_logs, scope
    app.router.add_get("/", _index)
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


async def _meta(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response(
        {
            "version": __version__,
            "scope": request.app[SCOPE],
            "phaseColours": PHASE_FILLS,
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
    text = await loop.run_in_executor(None, read_logs, obj["metadata"]["namespace"], entry["jobName"], lines)
    return web.Response(text=text, headers={"Cache-Control": "no-store"})


async def _events(request: web.Request) -> web.StreamResponse:
    """The live stream: the list's rows, or one workflow's step changes (``?workflow=ns/name``)."""
    hub = request.app[HUB]
    wanted = request.query.get("workflow")
    key: Key | None = tuple(wanted.split("/", 1)) if wanted and "/" in wanted else None  # type: ignore[assignment]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    changes = hub.subscribe()
    try:
        await _synced(hub)
        stream = _workflow_stream(hub, key, changes) if key else _list_stream(hub, changes)
        async for event, data in stream:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(changes)
    return response


async def _next(changes: Changes) -> tuple[str, Key] | None:
    """The next change, or None after a quiet spell (for a heartbeat that finds closed pages)."""
    return await changes.get(HEARTBEAT_SECONDS)


async def _list_stream(hub: Hub, changes: Changes) -> AsyncIterator[tuple[str, Any]]:
    yield (
        "snapshot",
        {
            "workflows": [summary(obj) for _, obj in sorted(hub.workflows.items())],
            "connected": hub.connected,
            "now": time.time(),
        },
    )
    while True:
        change = await _next(changes)
        if change is None:
            yield "heartbeat", {}
        elif change[0] == "CLOSE":
            return
        elif change[0] == "CONNECTION":
            yield "connection", {"connected": hub.connected}
        elif change[0] == "DELETED":
            yield "deleted", {"namespace": change[1][0], "name": change[1][1]}
        elif change[1] in hub.workflows:
            yield "workflow", summary(hub.workflows[change[1]])


async def _workflow_stream(hub: Hub, key: Key, changes: Changes) -> AsyncIterator[tuple[str, Any]]:
    """A full page once (and again when the spec changes), then only the steps that changed."""
    sent_generation: Any = object()
    sent_steps: dict[str, Any] = {}
    change: tuple[str, Key] | None = ("MODIFIED", key)
    while True:
        if change is None:
            yield "heartbeat", {}
        elif change[0] == "CLOSE":
            return
        elif change[0] == "CONNECTION":
            yield "connection", {"connected": hub.connected}
        elif change[1] == key:
            obj = hub.workflows.get(key)
            if obj is None:
                yield "deleted", {"namespace": key[0], "name": key[1]}
                sent_generation, sent_steps = object(), {}
            elif obj["metadata"].get("generation") != sent_generation:
                page = detail(obj)
                sent_generation, sent_steps = page["generation"], page["steps"]
                yield "page", {**page, "now": time.time()}
            else:
                steps = step_views(obj.get("status") or {})
                changed = changed_steps(sent_steps, steps)
                sent_steps = steps
                yield "steps", {**header(obj), "steps": changed, "now": time.time()}
        change = await _next(changes)
