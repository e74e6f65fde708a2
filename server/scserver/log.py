"""Logging in nats-server's format: `[pid] 2006/01/02 15:04:05.000000 [INF] text`.

Operators grep for `[INF]`, `[ERR]`, `[DBG]`, `[TRC]`; keeping the shape means existing log
pipelines and habits carry over unchanged.
"""

from __future__ import annotations

import logging
import os
import sys
import time

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_TAGS = {
    TRACE: "TRC",
    logging.DEBUG: "DBG",
    logging.INFO: "INF",
    logging.WARNING: "WRN",
    logging.ERROR: "ERR",
    logging.CRITICAL: "FTL",
}

logger = logging.getLogger("scserver")


class NatsFormatter(logging.Formatter):
    """Formats records as nats-server does, optionally without the timestamp (`logtime: false`)."""

    def __init__(self, logtime: bool = True) -> None:
        super().__init__()
        self.logtime = logtime
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        tag = _TAGS.get(record.levelno, "INF")
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if self.logtime:
            ts = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(record.created))
            return f"[{self.pid}] {ts}.{int((record.created % 1) * 1e6):06d} [{tag}] {msg}"
        return f"[{self.pid}] [{tag}] {msg}"


def configure(
    debug: bool = False, trace: bool = False, logtime: bool = True, log_file: str | None = None
) -> None:
    """(Re)configure the server logger; called at start and on every reload."""
    level = TRACE if trace else logging.DEBUG if debug else logging.INFO
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler: logging.Handler
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(NatsFormatter(logtime))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def trace_enabled() -> bool:
    return logger.isEnabledFor(TRACE)


def tracef(msg: str, *args: object) -> None:
    logger.log(TRACE, msg, *args)
