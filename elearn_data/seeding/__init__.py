"""Deterministic, realistic seeding at any scale (``elearn seed``).

``seed(db_or_settings, scale="small", seed=0, reset=False, progress=None)``
generates learners, instructors, a catalog, enrollments with progress, reviews,
payments, lesson content and preferences -- identical for identical seeds, ids
included -- and loads them with COPY, one transaction per shard committed
together. Every seeded user's password is :data:`SEED_PASSWORD`
(``elearn-seed-password``). See ``docs/seeding.md``.
"""

from elearn_data.seeding.passwords import SEED_PASSWORD, seed_user_password_hash
from elearn_data.seeding.plan import PHASES, WORLD_NOW
from elearn_data.seeding.runner import (
    ProgressCallback,
    SeedReport,
    seed,
    seed_password_hash,
)
from elearn_data.seeding.scales import SCALES, Scale, get_scale

__all__ = [
    "PHASES",
    "SCALES",
    "SEED_PASSWORD",
    "WORLD_NOW",
    "ProgressCallback",
    "Scale",
    "SeedReport",
    "get_scale",
    "seed",
    "seed_password_hash",
    "seed_user_password_hash",
]
