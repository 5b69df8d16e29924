"""The `aura-dashboard` command: serve (the default) and check-config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import yaml
from aiohttp import web

from . import __version__
from .config import ConfigError, LoadedConfig, load_config, redacted
from .security.connections import ACCEPT_BATCH
from .tasks import stop_if_cancelled

EXIT_CONFIG = 2
SHUTDOWN_TIMEOUT_S = 3.0
# The listen queue: aiohttp's default is 128, and long-polling clients open connections in
# bursts (each answered poll is followed by the next); past the queue the kernel drops their
# SYNs and they retry after 1, 3, 7 s... (the bench saw polls arrive >10 s late at 500 clients).
# Node's default is 511; the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024

log = logging.getLogger("aura_dashboard")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aura-dashboard", description="Real-time operations dashboard for an AI stack.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", dest="sub_config",
                        help="YAML configuration (default: $AURA_CONFIG, else "
                             "./config/dashboard_config.yaml, else the shipped copy)")
    common.add_argument("--env-file", metavar="PATH", dest="sub_env_file",
                        help="a .env file of variables (default: ./.env when present)")
    parser.add_argument("--config", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--env-file", metavar="PATH", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", parents=[common], help="serve the dashboard (default)")
    commands.add_parser("check-config", parents=[common],
                        help="print the effective configuration, secrets redacted; exit 2 on problems")
    return parser


def _load(args: argparse.Namespace) -> LoadedConfig | None:
    try:
        return load_config(args.config, args.env_file, os.environ)
    except ConfigError as exc:
        print(f"aura-dashboard: the configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def check_config(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_CONFIG
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"# effective configuration from {loaded.config_path}"
          + (f" and {loaded.env_file}" if loaded.env_file else ""))
    print(yaml.safe_dump(redacted(loaded.settings), sort_keys=False), end="")
    return 0


def serve(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_CONFIG
    from .app import create_app, instance_name
    from .logs import configure_logging
    from .preflight import ListenError, bind, file_problems
    from .web.access_log import ClientAccessLogger

    settings = loaded.settings
    instance = instance_name(settings.dashboard)
    host, port = settings.dashboard.host, settings.dashboard.port
    # Faults of the host, said as one line naming the key, before anything starts.
    problems = file_problems(settings, instance)
    sockets = None
    if not problems:
        try:
            sockets = bind(host, port, backlog=LISTEN_BACKLOG)
        except (ListenError, OSError) as exc:
            problems = [str(exc) if isinstance(exc, ListenError)
                        else f"dashboard.host: cannot listen on {host}:{port}: {exc.strerror or exc}"]
    if problems:
        for problem in problems:
            print(f"aura-dashboard: {problem}", file=sys.stderr)
        return EXIT_CONFIG

    configure_logging(settings.logging, instance=instance)
    for warning in loaded.warnings:
        log.warning(warning)
    app = create_app(settings)
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    banner = f"Aura dashboard {__version__} serving on http://{shown}:{port}/ (config: {loaded.config_path})"

    def serving(_aiohttp_says: str) -> None:
        # Called once the sites are started on the bound sockets.
        if settings.logging.console == "stdout":
            log.info(banner)  # stdout carries log records only (one JSON line each)
        else:
            print(banner, flush=True)

    caps = connection_caps(settings)
    runner = web.AppRunner(app, handle_signals=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                           access_log=logging.getLogger("aiohttp.access"), access_log_class=ClientAccessLogger)
    try:
        _run(_serve(runner, sockets, caps, serving), _event_loop() or asyncio.new_event_loop())
    finally:
        for sock in sockets:
            sock.close()
    return 0


def connection_caps(settings):
    """The caps on open connections (`dashboard.max_connections`, lowered to fit the descriptor
    limit, and `max_connections_per_address`; a trusted proxy is held by the total only)."""
    from .security import ClientAddress, ConnectionCaps
    from .security.connections import descriptor_limit, effective_total

    dashboard = settings.dashboard
    limit = descriptor_limit()
    total = effective_total(dashboard.max_connections, limit)
    if total < dashboard.max_connections:
        log.warning("dashboard.max_connections: %d lowered to %d to fit the open-file limit (%d)",
                    dashboard.max_connections, total, limit)
    return ConnectionCaps(dashboard.max_connections_per_address, total,
                          exempt=ClientAddress(settings.security.trusted_proxies).is_trusted)


class CappedSockSite(web.SockSite):
    """aiohttp's site on a bound socket, with `ConnectionCaps` in front of its protocol."""

    __slots__ = ("_caps",)

    def __init__(self, runner: web.BaseRunner, sock, caps, **kwargs):
        super().__init__(runner, sock, **kwargs)
        self._caps = caps

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        # asyncio accepts up to `backlog` connections in one go before any of them reaches its
        # protocol (and the caps): a small batch keeps a burst of connections from taking every
        # descriptor before the excess ones are refused; the kernel's queue stays LISTEN_BACKLOG.
        self._server = await asyncio.get_running_loop().create_server(
            self._caps.factory(server), sock=self._sock, ssl=self._ssl_context, backlog=ACCEPT_BATCH)
        self._sock.listen(self._backlog)


async def _serve(runner: web.AppRunner, sockets, caps, serving) -> None:
    """What `web.run_app` does on bound sockets, with the connection caps in front."""
    await runner.setup()
    try:
        for sock in sockets:
            await CappedSockSite(runner, sock, caps, backlog=LISTEN_BACKLOG).start()
        serving("")
        while True:
            stop_if_cancelled()
            await asyncio.sleep(3600)
    finally:
        await runner.cleanup()


def _run(main, loop: asyncio.AbstractEventLoop) -> None:
    """Runs `main` until a signal (SIGINT, SIGTERM: aiohttp's GracefulExit) or its end, then
    cancels what is left, as `web.run_app` does."""
    task = loop.create_task(main)
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not task.done():
                task.cancel()
                try:
                    loop.run_until_complete(task)
                except asyncio.CancelledError:
                    pass
        finally:
            left = asyncio.all_tasks(loop)
            for pending in left:
                pending.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _event_loop():
    """uvloop's loop when it is installed (the `fast` extra), else None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    log.info("event loop: uvloop %s", uvloop.__version__)
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The options may stand before or after the command word.
    args.config = getattr(args, "sub_config", None) or args.config
    args.env_file = getattr(args, "sub_env_file", None) or args.env_file
    if args.command == "check-config":
        return check_config(args)
    return serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
