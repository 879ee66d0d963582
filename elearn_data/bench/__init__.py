"""``elearn bench``: the platform measured against its baselines, side by side, in one run.

``run_bench(settings, profile="quick")`` returns a :class:`BenchReport` whose
rows compare each platform path with a baseline measured in the same rounds
(see :mod:`elearn_data.bench.workloads` and ``docs/performance.md``).
"""

from elearn_data.bench.runner import BenchReport, BenchResult, get_sizes, run_bench
from elearn_data.bench.workloads import PROFILES, WORKLOADS, Sizes

BENCHMARKS: tuple[str, ...] = tuple(w.name for w in WORKLOADS)

__all__ = [
    "BENCHMARKS",
    "PROFILES",
    "BenchReport",
    "BenchResult",
    "Sizes",
    "get_sizes",
    "run_bench",
]
