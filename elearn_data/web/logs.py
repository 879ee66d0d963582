"""Request ids in every log line of a worker (a context variable and a logging filter)."""

from __future__ import annotations

import logging
from contextvars import ContextVar

_REQUEST_ID: ContextVar[str] = ContextVar("elearn_request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d %(request_id)s] %(name)s: %(message)s"


def current_request_id() -> str:
    return _REQUEST_ID.get()


def set_request_id(request_id: str) -> object:
    return _REQUEST_ID.set(request_id)


class RequestIdFilter(logging.Filter):
    """Add ``record.request_id`` (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _REQUEST_ID.get()
        return True


def log_config(level: str = "INFO") -> dict[str, object]:
    """The logging configuration of the server and its workers (uvicorn's ``log_config``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "elearn_data.web.logs.RequestIdFilter"}},
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            # Each request is logged once, with its id, by the API's own middleware.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "elearn_data": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
