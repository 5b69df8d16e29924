"""Log output per the `logging` section: JSON lines (or text) to stderr or stdout
(`logging.console`) and, optionally, a rotating file; every line names the instance."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from .config.loader import redact_url
from .config.schema import LoggingSettings

_OURS = "_aura_handler"
INSTANCE_PLACEHOLDER = "{instance}"
_SOCKETIO_LOGGERS = ("engineio.server", "socketio.server")


def _formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        # One object per record: ts, level, logger, instance, message and any `extra=` fields.
        return JsonFormatter(
            "%(levelname)s %(name)s %(instance)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="ts",
        )
    return logging.Formatter("%(asctime)s %(instance)s %(levelname)s %(name)s: %(message)s")


class _Instance(logging.Filter):
    """Stamps each record with the instance name, so replicas' lines can be told apart
    once a log collector has merged them, and redacts the credentials of any URL in it
    (a library's error message may quote a `redis://:password@...` address whole)."""

    def __init__(self, instance: str):
        super().__init__()
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        record.instance = self.instance
        if isinstance(record.msg, str) and ("@" in record.msg or record.args):
            try:
                message = record.getMessage()
            except Exception:  # a bad format is the logging module's to report
                return True
            if "@" in message and "://" in message:
                record.msg, record.args = redact_url(message), None
        return True


def log_file_path(settings: LoggingSettings, instance: str) -> str:
    """`logging.file.path` with `{instance}` replaced, so replicas sharing a volume each
    write (and rotate) their own file."""
    return settings.file.path.replace(INSTANCE_PLACEHOLDER, instance)


def configure_logging(settings: LoggingSettings, stream=None, instance: str = "") -> logging.Handler | None:
    """Install our handlers on the root logger; returns the file handler, if one was opened.

    `stream` overrides `logging.console` (tests). A log file that cannot be written is not
    fatal: records go to the console only, and a single warning says why.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(settings.level)
    formatter = _formatter(settings.format)
    stamp = _Instance(instance)

    console = logging.StreamHandler(stream or (sys.stdout if settings.console == "stdout" else sys.stderr))
    console.setFormatter(formatter)
    console.addFilter(stamp)
    setattr(console, _OURS, True)
    root.addHandler(console)

    file_handler = None
    problem = None
    if settings.file.enabled and settings.file.path:  # an empty LOG_FILE means no file
        path = Path(log_file_path(settings, instance))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.handlers.RotatingFileHandler(
                path,
                maxBytes=settings.file.max_size_mb * 1024 * 1024,
                backupCount=settings.file.backup_count,
                encoding="utf-8",
            )
        except OSError as exc:
            problem = f"{path}: {exc.strerror or exc}"
        else:
            file_handler.setFormatter(formatter)
            file_handler.addFilter(stamp)
            setattr(file_handler, _OURS, True)
            root.addHandler(file_handler)
    # python-engineio/socketio give these loggers a handler of their own (plain text to
    # stderr, so every error twice) unless a level is set; ERROR is the level they would pick.
    for name in _SOCKETIO_LOGGERS:
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.ERROR)
    # aiohttp's access log is what `api_requests` switches.
    logging.getLogger("aiohttp.access").disabled = not settings.api_requests
    if problem:
        logging.getLogger(__name__).warning(
            "log file cannot be written, logging to the console only",
            extra={"key": "logging.file.path", "reason": problem},
        )
    return file_handler
