"""Checks made before the server starts: files it must write and the address it listens on.

Each fault is one line naming the key (and its variable), like a configuration problem, rather
than a traceback from deep inside a store or a log handler.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from .config.loader import shipped_config_text
from .config.schema import Settings
from .logs import log_file_path

_MEMORY = ":memory:"


def file_problem(path: str, key: str, variable: str) -> str | None:
    """Why `path` cannot be a file this process appends to, or None (it is created when
    missing, with its directories, exactly as the store or handler would)."""
    if not path or path == _MEMORY:
        return None
    target = Path(path)
    if target.is_dir():
        reason = "is a directory"
    else:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a"):
                pass
            return None
        except OSError as exc:
            reason = f"cannot be written ({exc.strerror or exc})"
    return f"{key}: {path!r} {reason} (set {variable} to a file this user can write)"


def _shipped_default(variable: str) -> str:
    found = re.search(r"\$\{" + variable + r":([^}]*)\}", shipped_config_text())
    return found.group(1) if found else ""


def file_problems(settings: Settings, instance: str) -> list[str]:
    """The audit store, the history file and a log file the user chose.

    The shipped log path (/var/log/aura/...) is best effort: a user without rights there gets
    console logging and one warning (`configure_logging`); a path the user set must work.
    """
    problems = [
        file_problem(settings.panels.governance.audit_store_path,
                     "panels.governance.audit_store_path", "AUDIT_STORE_PATH"),
    ]
    history = settings.history
    if history.enabled and history.store == "sqlite":
        problems.append(file_problem(history.sqlite_path, "history.sqlite_path", "HISTORY_STORE_PATH"))
    log = settings.logging.file
    if log.enabled and log.path and log.path != _shipped_default("LOG_FILE"):
        problems.append(file_problem(log_file_path(settings.logging, instance),
                                     "logging.file.path", "LOG_FILE"))
    return [p for p in problems if p]


class ListenError(Exception):
    """The address cannot be listened on; the message is one line naming it and the key."""


def bind(host: str, port: int, backlog: int = 128) -> list[socket.socket]:
    """Listening sockets for `host`:`port`, bound before anything starts (every address the
    host resolves to, as asyncio's create_server would), so "serving on" is printed only when
    it holds and a port in use is said before a stream starts."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                shown = f"[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
                raise ListenError(f"dashboard.port: cannot listen on {shown}: "
                                  f"{(exc.strerror or str(exc)).lower()} (set DASHBOARD_PORT or "
                                  "DASHBOARD_HOST)") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
