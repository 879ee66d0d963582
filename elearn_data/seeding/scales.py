"""The seeding scales: how many rows of each kind a scale produces.

``small`` is the reference design's data set (100 students, 20 instructors, 50
courses, 200 enrollments, 150 transactions); ``large`` is the platform at a
million learners. The figures below are exact: the generator hits them, not
approximately but row for row (transactions count purchases and refunds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from elearn_data.errors import InvalidInput
from elearn_data.regions import Region

ScaleName = Literal["small", "medium", "large"]


@dataclass(frozen=True, slots=True)
class Scale:
    """The figures of one seeding scale."""

    name: str
    students: int
    instructors: int
    courses: int
    enrollments: int
    # Rows of the transactions table: purchases (completed, failed, refunded) and refunds.
    transactions: int
    # Preferences documents are written for at most this many learners (mongomock
    # keeps every document in process memory); the others get theirs on first use.
    preferences_limit: int
    # Rows per COPY batch (bounded memory: one batch per table and shard in flight).
    batch_rows: int = 20_000


SCALES: Final[dict[str, Scale]] = {
    "small": Scale(
        "small",
        students=100,
        instructors=20,
        courses=50,
        enrollments=200,
        transactions=150,
        preferences_limit=20_000,
    ),
    "medium": Scale(
        "medium",
        students=10_000,
        instructors=200,
        courses=500,
        enrollments=50_000,
        transactions=30_000,
        preferences_limit=20_000,
    ),
    "large": Scale(
        "large",
        students=1_000_000,
        instructors=5_000,
        courses=20_000,
        enrollments=5_000_000,
        transactions=3_000_000,
        preferences_limit=20_000,
    ),
}

# Where learners live: not uniform (the platform started in North America and
# Europe; Asia is the fastest-growing region).
REGION_WEIGHTS: Final[dict[Region, float]] = {
    Region.NORTH_AMERICA: 0.30,
    Region.SOUTH_AMERICA: 0.11,
    Region.EUROPE: 0.25,
    Region.AFRICA: 0.06,
    Region.ASIA: 0.21,
    Region.OCEANIA: 0.07,
}

# Instructors are spread a little differently (more in the older markets).
INSTRUCTOR_REGION_WEIGHTS: Final[dict[Region, float]] = {
    Region.NORTH_AMERICA: 0.36,
    Region.SOUTH_AMERICA: 0.08,
    Region.EUROPE: 0.28,
    Region.AFRICA: 0.04,
    Region.ASIA: 0.18,
    Region.OCEANIA: 0.06,
}


def get_scale(name: object) -> Scale:
    """Return the scale called ``name``.

    Raises:
        InvalidInput: not one of small, medium, large.
    """
    if isinstance(name, Scale):
        return name
    if isinstance(name, str) and name.strip().lower() in SCALES:
        return SCALES[name.strip().lower()]
    raise InvalidInput(f"unknown scale {name!r}; scales: {', '.join(SCALES)}")


def split_exact(total: int, weights: dict[Region, float]) -> dict[Region, int]:
    """Split ``total`` over regions in proportion to ``weights``, summing exactly to ``total``.

    Largest remainder method, ties broken by the regions' order, so the split is
    the same on every run.
    """
    weight_sum = sum(weights.values())
    raw = {r: total * w / weight_sum for r, w in weights.items()}
    counts = {r: int(v) for r, v in raw.items()}
    left = total - sum(counts.values())
    order = sorted(raw, key=lambda r: (-(raw[r] - counts[r]), list(Region).index(r)))
    for region in order[:left]:
        counts[region] += 1
    return counts
