"""Log output per the `logging` section: JSON lines (or text) to stderr and a rotating file."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from .config.schema import LoggingSettings

_OURS = "_aura_handler"


def _formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        # One object per record: ts, level, logger, message and any `extra=` fields.
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="ts",
        )
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure_logging(settings: LoggingSettings, stream=None) -> logging.Handler | None:
    """Install our handlers on the root logger; returns the file handler, if one was opened.

    A log file that cannot be written is not fatal: records go to stderr only, and a single
    warning says why.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(settings.level)
    formatter = _formatter(settings.format)

    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(formatter)
    setattr(console, _OURS, True)
    root.addHandler(console)

    file_handler = None
    problem = None
    if settings.file.enabled and settings.file.path:  # an empty LOG_FILE means no file
        path = Path(settings.file.path)
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
            setattr(file_handler, _OURS, True)
            root.addHandler(file_handler)
    # aiohttp's access log is what `api_requests` switches.
    logging.getLogger("aiohttp.access").disabled = not settings.api_requests
    if problem:
        logging.getLogger(__name__).warning(
            "log file cannot be written, logging to stderr only",
            extra={"key": "logging.file.path", "reason": problem},
        )
    return file_handler
