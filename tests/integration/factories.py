"""Small factories for rows, with overrides (deterministic where it matters)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.models import User
from elearn_data.regions import Region

_counter = itertools.count(1)


def add_user(db: Database, region: Region = Region.EUROPE, **overrides: Any) -> uuid.UUID:
    """Insert a user row straight through a writer session; return its id."""
    n = next(_counter)
    user_id = ids.new_id(region)
    values: dict[str, Any] = {
        "id": user_id,
        "email": f"user{n}-{user_id.hex[:8]}@example.org",
        "password_hash": "not-a-real-hash",
        "first_name": "Ada",
        "last_name": f"Lovelace{n}",
        "region": region.value,
        "role": "student",
    }
    values.update(overrides)
    with db.writer(region) as uow:
        uow.session.add(User(**values))
    return user_id
