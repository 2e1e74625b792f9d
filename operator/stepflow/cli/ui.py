"""``stepflow ui``: serve the web UI on loopback, reading the cluster as the kubeconfig's identity."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from stepflow.cli.cluster import connect, log_tail
from stepflow.cli.options import whole_number


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ui", help="serve a live, read-only web UI of the workflows")
    parser.add_argument("--kubeconfig", help="path to the kubeconfig file")
    parser.add_argument("--context", help="kubeconfig context to use")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    parser.add_argument("-A", "--all-namespaces", action="store_true",
                        help="every namespace the identity may list (default: -n, else the context's)")
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=whole_number(0), default=8480,
                        help="port (default 8480; 0 picks a free one)")
    parser.set_defaults(handler=cmd_ui)


def read_only(api: Any) -> Any:
    """The UI never writes: every call but a GET is refused before it leaves the process."""
    api.may_write = lambda: False
    return api


def cmd_ui(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    api, namespace = connect(args)
    scope = "" if args.all_namespaces else namespace
    try:
        asyncio.run(_serve(read_only(api), scope, args.address, args.port))
    except OSError as exc:  # the port is taken, or the address is not this machine's
        reason = exc.strerror or exc
        raise SystemExit(f"error: cannot listen on {args.address}:{args.port}: {reason}") from None
    return 0


async def _serve(api: Any, scope: str, address: str, port: int) -> None:
    from aiohttp import web

    from stepflow.ui.server import make_app
    from stepflow.ui.watch import Hub, WorkflowWatch

    hub = Hub()
    watch = WorkflowWatch(api, scope or None, hub, asyncio.get_running_loop())
    app = make_app(hub, lambda ns, job, lines: log_tail(api, ns, job, lines), scope)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    await site.start()
    watch.start()
    bound = runner.addresses[0]
    host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    where = f"namespace {scope}" if scope else "all namespaces"
    print(f"stepflow ui: http://{host}:{bound[1]}/ ({where}; read-only; Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        watch.stopped.set()
        await runner.cleanup()
        print("stepflow ui: stopped", file=sys.stderr, flush=True)
