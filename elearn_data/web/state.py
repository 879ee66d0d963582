"""What one worker process holds: its Database, its keys, the shared rate limiter."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field

from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import NotFound
from elearn_data.web.ratelimit import RateLimiter
from elearn_data.web.tokens import AccessTokens, CausalTokens

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class WorkerState:
    """One per worker process, built at start-up and closed at shutdown."""

    settings: Settings
    db: Database
    access: AccessTokens
    causal: CausalTokens
    limiter: RateLimiter | None
    # Names the worker in the X-Elearn-Worker header (not its pid: nothing to learn from it).
    worker_id: str = field(default_factory=lambda: secrets.token_hex(4))

    def close(self) -> None:
        if self.limiter is not None:
            self.limiter.close()
        self.db.close()


def path_id(name: str, value: str) -> uuid.UUID:
    """Return a path segment as an id; one that is not an id names nothing (NotFound)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{name} {value[:64]!r} not found") from None


def clean_request_id(value: str | None) -> str:
    """Keep a caller's X-Request-ID when it is a sane token, else make one."""
    if value and _REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex
