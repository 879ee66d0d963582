"""``run_bench``: every benchmark against its baseline, in one run, on scratch databases.

The run creates per-shard scratch databases on the embedded cluster
(:mod:`~elearn_data.bench.scratch`), opens one ``Database`` on them, loads its
own data, and runs each workload of :mod:`~elearn_data.bench.workloads` in
interleaved rounds while sampling the process's RSS. The scratch databases
are dropped at the end, whatever happens.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import sqlalchemy
from sqlalchemy import text

from elearn_data.bench.data import LearnerFactory
from elearn_data.bench.measure import MIB, Rounds, RssSampler, Sample, interleave, peak_rss_ever
from elearn_data.bench.scratch import scratch_databases
from elearn_data.bench.workloads import (
    PROFILES,
    RUN_ORDER,
    WORKLOADS,
    Context,
    Sizes,
    Workload,
    load_read_pool,
)
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import InvalidInput

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchResult:
    """One row of the report (the JSON ``results`` entries).

    ``value`` and ``baseline`` are medians over the rounds (throughput, or
    milliseconds per operation for a ``ms`` unit); ``ratio`` is the median of
    the per-round ratios, oriented so that higher is better; ``ratio_min`` and
    ``ratio_max`` show how noisy the rounds were. A workload that failed has
    ``error`` set and no figures.
    """

    name: str
    value: float | None
    baseline: float | None
    ratio: float | None
    target: float | None
    meets_target: bool | None
    unit: str
    peak_rss_mib: float
    rounds: int
    ratio_min: float | None
    ratio_max: float | None
    measured: str
    baseline_desc: str
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchReport:
    """Every result of one run, and where it ran."""

    profile: str
    results: list[BenchResult]
    machine: dict[str, Any]
    started_at: str
    seconds: float
    peak_rss_mib: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 1),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "machine": self.machine,
            "results": [r.to_dict() for r in self.results],
        }

    def write_json(self, path: Path) -> None:
        """Write the report as JSON (``{"results": [...], ...}``)."""
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")

    @property
    def all_met(self) -> bool:
        """True when no row misses its target (report-only rows count as met)."""
        return all(r.meets_target is not False for r in self.results)

    @property
    def failed(self) -> list[BenchResult]:
        """Rows whose workload raised instead of finishing."""
        return [r for r in self.results if r.error is not None]


def get_sizes(profile: str | Sizes) -> Sizes:
    """Return the sizes of ``profile`` (smoke, quick or full).

    Raises:
        InvalidInput: not a known profile.
    """
    if isinstance(profile, Sizes):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise InvalidInput(
            f"unknown benchmark profile {profile!r}; profiles: {', '.join(PROFILES)}"
        ) from None


def _machine(db: Database) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    shard = db.router.shards[0]
    with db.cluster.engines.primary(shard).engine.connect() as conn:
        server = str(conn.execute(text("SHOW server_version")).scalar_one())
        sync_commit = str(conn.execute(text("SHOW synchronous_commit")).scalar_one())
        sync_names = str(conn.execute(text("SHOW synchronous_standby_names")).scalar_one())
        fsync = str(conn.execute(text("SHOW fsync")).scalar_one())
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg2": psycopg2.__version__.split()[0],
        "postgresql": server,
        "fsync": fsync,
        "synchronous_commit": sync_commit,
        "synchronous_standby_names": sync_names or "(none: async replicas)",
        "shards": list(db.router.shards),
        "replicas_per_shard": {s: len(db.cluster.engines.replicas(s)) for s in db.router.shards},
    }


def bench_settings(scratch: Settings) -> Settings:
    """Settings of the run's own Database: in-process content store, cheap argon2, no recovery."""
    return scratch.model_copy(
        update={
            "recover_on_connect": False,
            # Bench learners never reach a real MongoDB.
            "mongo_uri": None,
            "mongo_db": f"elearn_bench_{secrets.token_hex(4)}",
            # Registration is set-up here (two instructors), not measured.
            "argon2_time_cost": 1,
            "argon2_memory_kib": 8192,
        }
    )


def _result(workload: Workload, rounds: Rounds, peak: float, seconds: float) -> BenchResult:
    if workload.kind == "rate":
        value = rounds.median_rate("measured")
        baseline = rounds.median_rate("baseline")
    else:
        value = rounds.median_ms("measured")
        baseline = rounds.median_ms("baseline")
    ratio = rounds.ratio()
    low, high = rounds.spread()
    target = workload.target
    return BenchResult(
        name=workload.name,
        value=round(value, 3),
        baseline=round(baseline, 3),
        ratio=round(ratio, 3),
        target=target,
        meets_target=None if target is None else ratio >= target,
        unit=workload.unit,
        peak_rss_mib=round(peak, 1),
        rounds=len(rounds.measured),
        ratio_min=round(low, 3),
        ratio_max=round(high, 3),
        measured=workload.measured_label,
        baseline_desc=workload.baseline_label,
        seconds=round(seconds, 1),
        detail=workload.detail,
    )


def _run_one(workload: Workload, say: Progress) -> BenchResult:
    """Set up, run the interleaved rounds of, and finish one workload; never raises."""
    begun = time.perf_counter()
    total = workload.rounds()

    def on_round(i: int, m: Sample, b: Sample) -> None:
        say(f"{workload.name}: round {i + 1}/{total}, ratio {m.rate / b.rate:.2f}")

    with RssSampler() as rss:
        try:
            say(f"{workload.name}: set-up")
            workload.setup()
            rounds = interleave(
                workload.measured,
                workload.baseline,
                rounds=total,
                warmup=workload.sizes.warmup,
                chunks=workload.chunks(),
                on_round=on_round,
            )
            workload.finish()
        except Exception as exc:
            log.warning("benchmark %s failed", workload.name, exc_info=True)
            say(f"{workload.name}: FAILED: {exc}")
            return _failed(workload, exc, rss.peak_mib, time.perf_counter() - begun)
    return _result(workload, rounds, rss.peak_mib, time.perf_counter() - begun)


def _failed(workload: Workload, exc: Exception, peak: float, seconds: float) -> BenchResult:
    return BenchResult(
        name=workload.name,
        value=None,
        baseline=None,
        ratio=None,
        target=workload.target,
        meets_target=None if workload.target is None else False,
        unit=workload.unit,
        peak_rss_mib=round(peak, 1),
        rounds=0,
        ratio_min=None,
        ratio_max=None,
        measured=workload.measured_label,
        baseline_desc=workload.baseline_label,
        seconds=round(seconds, 1),
        detail=workload.detail,
        error=f"{type(exc).__name__}: {exc}"[:500],
    )


def run_bench(
    settings: Settings,
    *,
    profile: str | Sizes = "full",
    only: list[str] | None = None,
    progress: Progress | None = None,
    seed: int | None = None,
) -> BenchReport:
    """Run every benchmark (or ``only`` those named) against its baseline; return the report.

    Args:
        settings: the platform's settings (an embedded cluster under ``settings.home``).
        profile: ``smoke`` (CI: tiny, seconds), ``quick`` (< 2 minutes) or ``full``.
        only: names of the benchmarks to run (default: all seven).
        progress: called with one line per step.
        seed: seed of the random choices (which learners are read).

    Raises:
        InvalidInput: an unknown profile or benchmark name.
        ConfigurationError: no embedded cluster to create scratch databases on.
    """
    sizes = get_sizes(profile)
    say = progress or (lambda _msg: None)
    names = [w.name for w in WORKLOADS]
    chosen = set(only or names)
    unknown = chosen - set(names)
    if unknown:
        raise InvalidInput(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; benchmarks: {', '.join(names)}"
        )
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict[str, BenchResult] = {}
    with scratch_databases(settings, progress=say) as scratch:
        run_settings = bench_settings(scratch)
        db = Database(run_settings, application="elearn-bench")
        try:
            machine = _machine(db)
            ctx = Context(
                db=db,
                settings=run_settings,
                sizes=sizes,
                learners=LearnerFactory(),
                rng=random.Random(seed),  # noqa: S311 - picks rows, not secrets
            )
            say(f"loading {sizes.read_pool} learners to read")
            load_read_pool(ctx)
            for cls in RUN_ORDER:
                if cls.name in chosen:
                    results[cls.name] = _run_one(cls(ctx), say)
        finally:
            db.close()
    ordered = [results[w.name] for w in WORKLOADS if w.name in results]
    return BenchReport(
        profile=sizes.name,
        results=ordered,
        machine=machine,
        started_at=started_at,
        seconds=time.perf_counter() - started,
        peak_rss_mib=peak_rss_ever() / MIB,
    )
