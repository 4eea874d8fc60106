"""Structured logging: JSON lines (default) or plain text, chosen by TICKWIRE_LOG_FORMAT.

A line written while a sampled span is current carries its `trace_id` and `span_id`, so
a log line leads to its trace and back.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from tickwire.core.telemetry import span_ids

# A record's own attributes, and those the text form adds: not fields of the line.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "fields", "trace"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if ids := span_ids():
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """One line for people: the message, then the record's fields as `key=value` (what
    the JSON form carries as keys), then the trace."""

    def __init__(self, service: str):
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: "
                         "%(message)s%(fields)s%(trace)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = span_ids()
        record.fields = "".join(f" {k}={v}" for k, v in vars(record).items()
                                if k not in _STANDARD)
        record.trace = f" [trace_id={ids[0]} span_id={ids[1]}]" if ids else ""
        return super().format(record)


class MalformedRequests(logging.Filter):
    """aiohttp logs every malformed HTTP request as an ERROR with a traceback, so junk
    from the network grows the log a hundredfold. Such a record becomes one WARNING
    line without the traceback, at most once per `interval` seconds; the next line says
    how many were left out. Errors raised by handlers (bugs) pass untouched."""

    def __init__(self, interval: float = 1.0, clock=time.monotonic):
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._next = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        now = self._clock()
        if now < self._next:
            self._suppressed += 1
            return False
        self._next = now + self._interval
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "malformed HTTP request from %s: %s"
        record.args = (peer, str(error.message or error)[:200])
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        record.suppressed = self._suppressed
        self._suppressed = 0
        return True


def configure_logging(service: str, level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    handler.formatter.converter = time.gmtime
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server_log = logging.getLogger("aiohttp.server")
    server_log.filters[:] = [MalformedRequests()]
