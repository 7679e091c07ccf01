"""Logging: human-readable lines or JSON lines, to stderr and to a file per run.

The nightly job is read afterwards, by people and by log collectors: every
line of a run goes to its own file as well as to stderr, in the chosen format.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

LOGGER = "weipian"
_context: dict[str, object] = {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            **_context,
        }
        for key in ("stage", "event"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    def __init__(self, with_time: bool):
        super().__init__("%(asctime)s %(levelname)-7s %(message)s" if with_time else "%(message)s",
                         datefmt="%Y-%m-%d %H:%M:%S")


def setup(fmt: str = "text", debug: bool = False) -> logging.Logger:
    """Log to stderr in `fmt` ('text' or 'json')."""
    logging.raiseExceptions = False  # a log file on a full disk must not drown the real error
    log = logging.getLogger(LOGGER)
    log.handlers.clear()
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter(with_time=False))
    handler.set_name("stderr")
    log.addHandler(handler)
    return log


def add_file(path: Path, fmt: str) -> None:
    """Also write every line to `path` (created with its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter(with_time=True))
    logging.getLogger(LOGGER).addHandler(handler)


def set_context(**values) -> None:
    """Fields added to every JSON line from now on (run id, county)."""
    _context.update(values)


def get(name: str | None = None) -> logging.Logger:
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)
