"""The seeded users' password and its per-user hashes."""

from __future__ import annotations

import hashlib
from typing import Final

from argon2.low_level import Type, hash_secret

# Every seeded user (learners, instructors) logs in with this password.
SEED_PASSWORD: Final = "elearn-seed-password"  # noqa: S105 - published on purpose (docs, CLI)

# Seeded hashes are cheap on purpose (the seed password is published); each
# has its own salt, and the first login re-hashes with the settings' parameters.
SEED_HASH_MEMORY_KIB: Final = 8
SEED_HASH_TIME_COST: Final = 1


def seed_user_password_hash(seed: int, user_id_hex: str) -> str:
    """Return the argon2id hash of :data:`SEED_PASSWORD` for one seeded user.

    Every user gets its own salt (derived from the seed and the user's id, so one
    seed gives byte-identical rows), so no two users share a hash. One hash per
    user at the settings' cost would take hours for a million users; these use
    argon2id's smallest parameters instead, and ``Passwords.needs_rehash`` makes
    the first successful login store a hash with the settings' parameters.
    """
    salt = hashlib.sha256(f"elearn_data seed salt {seed} {user_id_hex}".encode()).digest()[:16]
    return hash_secret(
        SEED_PASSWORD.encode("utf-8"),
        salt,
        time_cost=SEED_HASH_TIME_COST,
        memory_cost=SEED_HASH_MEMORY_KIB,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    ).decode("ascii")
