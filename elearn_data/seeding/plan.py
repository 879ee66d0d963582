"""What the phases of a seeding run share: the seeded world, its clock, and its batches.

Determinism rests on two rules:

* every random draw comes from a numpy generator named by ``(seed, phase,
  region)`` (:meth:`World.rng`), so a phase never depends on how much another
  phase drew, and a region never on another region;
* no clock: the seeded world's "now" is :data:`WORLD_NOW_MS`, and every
  timestamp -- and so every id, whose leading 48 bits are its row's creation
  time -- is derived from it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import numpy as np

from elearn_data.regions import Region
from elearn_data.seeding.fakes import RegionPool, TextPool
from elearn_data.seeding.scales import Scale
from elearn_data.sharding.routing import Router

# The seeded world ends here (not the machine's clock): 2026-11-01T00:00:00Z.
WORLD_NOW: Final = datetime(2026, 11, 1, tzinfo=UTC)
WORLD_NOW_MS: Final = int(WORLD_NOW.timestamp() * 1000)
# ... and starts three years earlier.
WORLD_START_MS: Final = WORLD_NOW_MS - 3 * 365 * 86_400_000

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000

PHASES: Final = (
    "users",
    "catalog",
    "enrollments",
    "progress",
    "reviews",
    "assessments",
    "payments",
    "content",
)


@dataclass(frozen=True, slots=True)
class Batch:
    """COPY text for one table on one shard, and how far it moves its phase."""

    shard: str
    table: str
    columns: tuple[str, ...]
    payload: bytes
    rows: int
    advance: int = 0
    binary: bool = False  # payload is binary COPY rows (without header and trailer)


@dataclass
class Users:
    """One region's users (students and instructors), in creation order."""

    region: Region
    hi: np.ndarray
    lo: np.ndarray
    created_ms: np.ndarray
    instructor: np.ndarray  # bool
    active: np.ndarray  # bool

    @property
    def students(self) -> np.ndarray:
        """Indexes of the students."""
        return np.flatnonzero(~self.instructor)

    @property
    def instructors(self) -> np.ndarray:
        """Indexes of the instructors."""
        return np.flatnonzero(self.instructor)


@dataclass
class Catalog:
    """The catalog, as arrays indexed by course (and by lesson, in curriculum order)."""

    course_hi: np.ndarray
    course_lo: np.ndarray
    home: list[Region]  # instructor's region of each course
    category: np.ndarray  # index into category names
    topic: list[str]
    published_ms: np.ndarray  # -1: never published (draft)
    enrollable: np.ndarray  # bool: published or archived
    price_cents: np.ndarray
    capacity: np.ndarray  # 0 = unlimited
    lesson_start: np.ndarray  # first lesson index of each course
    lesson_count: np.ndarray
    lesson_hi: np.ndarray
    lesson_lo: np.ndarray
    lesson_minutes: np.ndarray
    lesson_type: np.ndarray  # 0 video, 1 reading, 2 quiz, 3 assignment
    lesson_has_document: np.ndarray  # bool: content document written to the store
    lesson_titles: list[str]
    course_titles: list[str]
    category_names: list[str]
    # Seats of capacity-bound courses each region may fill (sums to the capacity).
    quotas: dict[Region, np.ndarray] = field(default_factory=dict)
    # Each course's instructor id halves (the graders of its assessments).
    instructor_hi: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    instructor_lo: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))


@dataclass
class Enrollments:
    """One region's enrollments and what later phases need of them."""

    hi: np.ndarray
    lo: np.ndarray
    user: np.ndarray  # index into the region's Users
    course: np.ndarray  # index into Catalog
    status: np.ndarray  # 0 active, 1 completed, 2 dropped
    done: np.ndarray  # completed lessons
    current: np.ndarray  # bool: a started, unfinished lesson has a progress row
    enrolled_ms: np.ndarray
    end_ms: np.ndarray  # last activity: completion, drop, or last lesson touched


ACTIVE, COMPLETED, DROPPED = 0, 1, 2
STATUS_NAMES: Final = np.array(["active", "completed", "dropped"])


@dataclass
class World:
    """The state of one seeding run, filled phase by phase."""

    seed: int
    scale: Scale
    router: Router
    regions: tuple[Region, ...]
    pools: dict[Region, RegionPool]
    texts: TextPool
    password_hash: str
    email_key: bytes
    tax_rate: Decimal
    content_limit: int | None  # None: a document for every video/reading lesson
    users: dict[Region, Users] = field(default_factory=dict)
    catalog: Catalog | None = None
    enrollments: dict[Region, Enrollments] = field(default_factory=dict)
    invoice_counters: dict[str, int] = field(default_factory=dict)

    def rng(self, phase: str, region: Region | None = None) -> np.random.Generator:
        """Return the generator of (seed, phase, region): the same draws on every run."""
        key = f"{phase}:{region.value if region else '-'}"
        return np.random.default_rng([self.seed, zlib.crc32(key.encode("utf-8"))])

    def shard_of(self, region: Region) -> str:
        """Return the shard that stores ``region``'s learners."""
        return self.router.shard_of_region(region)

    def must_catalog(self) -> Catalog:
        """Return the catalog (the catalog phase has run)."""
        if self.catalog is None:  # pragma: no cover - phase order is fixed
            raise RuntimeError("the catalog phase has not run")
        return self.catalog
