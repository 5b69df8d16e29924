"""The `aura-dashboard` command: serve (the default) and check-config."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import yaml
from aiohttp import web

from . import __version__
from .config import ConfigError, LoadedConfig, load_config, redacted

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
        # aiohttp calls this once its sites are started on the bound sockets.
        if settings.logging.console == "stdout":
            log.info(banner)  # stdout carries log records only (one JSON line each)
        else:
            print(banner, flush=True)

    try:
        web.run_app(app, sock=sockets, print=serving, loop=_event_loop(), backlog=LISTEN_BACKLOG,
                    shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=logging.getLogger("aiohttp.access"),
                    access_log_class=ClientAccessLogger)
    finally:
        for sock in sockets:
            sock.close()
    return 0


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
