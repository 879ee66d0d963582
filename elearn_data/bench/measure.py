"""Timing and memory primitives of the benchmark: interleaved rounds, medians, peak RSS.

Machines like the CI runners vary by 30 % between runs and drift within one, so
a figure only means something next to its baseline measured at the same
moment. :func:`interleave` therefore runs the measured side and the baseline
side one after the other inside every round, alternating which goes first
(ABBA), in small chunks, and keeps each round's pair. The reported ratio is
the median of the per-round ratios (noise that hits a round hits both sides
of it); the reported values are the medians of each side's per-round rates.

:class:`RssSampler` watches the process's resident set size on a background
thread, so every benchmark reports the peak memory it reached beside its time.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed batch: ``units`` of work (operations, rows, calls) in ``seconds``."""

    seconds: float
    units: int

    @property
    def rate(self) -> float:
        """Units per second."""
        return self.units / self.seconds if self.seconds > 0 else float("inf")

    @property
    def per_unit_ms(self) -> float:
        """Milliseconds per unit."""
        return self.seconds * 1000 / self.units if self.units else float("nan")


Side = Callable[[int, int], Sample]
"""One side of a benchmark: called with (round, chunk), runs one chunk of work."""


@dataclass
class Rounds:
    """The per-round samples of both sides of one benchmark."""

    measured: list[Sample] = field(default_factory=list)
    baseline: list[Sample] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """Per-round throughput(measured) / throughput(baseline)."""
        return [m.rate / b.rate for m, b in zip(self.measured, self.baseline, strict=True)]

    def ratio(self) -> float:
        """Median of the per-round ratios."""
        return statistics.median(self.ratios)

    def median_rate(self, side: str) -> float:
        samples = self.measured if side == "measured" else self.baseline
        return statistics.median(s.rate for s in samples)

    def median_ms(self, side: str) -> float:
        samples = self.measured if side == "measured" else self.baseline
        return statistics.median(s.per_unit_ms for s in samples)

    def spread(self) -> tuple[float, float]:
        """(min, max) of the per-round ratios: how noisy the run was."""
        ratios = self.ratios
        return min(ratios), max(ratios)


def timed(units: int, work: Callable[[], object]) -> Sample:
    """Run ``work`` once and return how long it took for ``units`` of work."""
    start = time.perf_counter()
    work()
    return Sample(time.perf_counter() - start, units)


def interleave(
    measured: Side,
    baseline: Side,
    *,
    rounds: int,
    warmup: int = 1,
    chunks: int = 1,
    on_round: Callable[[int, Sample, Sample], None] | None = None,
) -> Rounds:
    """Run ``rounds`` interleaved rounds (after ``warmup`` unrecorded ones).

    A round is ``chunks`` pairs of calls, one chunk of work per call, and the
    order alternates from pair to pair and from round to round (measured first,
    then baseline first, ...): a burst of noise from the machine lands on both
    sides of the round it hits. A round's sample is the sum of its chunks.
    """
    result = Rounds()
    for index in range(warmup + rounds):
        m_seconds = b_seconds = 0.0
        m_units = b_units = 0
        for chunk in range(chunks):
            if (index + chunk) % 2 == 0:
                m = measured(index, chunk)
                b = baseline(index, chunk)
            else:
                b = baseline(index, chunk)
                m = measured(index, chunk)
            m_seconds += m.seconds
            m_units += m.units
            b_seconds += b.seconds
            b_units += b.units
        if index >= warmup:
            m_round, b_round = Sample(m_seconds, m_units), Sample(b_seconds, b_units)
            result.measured.append(m_round)
            result.baseline.append(b_round)
            if on_round is not None:
                on_round(index - warmup, m_round, b_round)
    return result


def fair_share_makespan(works: Sequence[float], cpus: int) -> float:
    """Return when CPU-bound jobs started together all finish under fair sharing.

    ``works``: each job's time alone on one CPU. The scheduler (Linux's CFS)
    gives the runnable jobs equal shares: while ``k`` jobs run, each advances
    at ``min(1, cpus / k)`` of a CPU, so the shortest finishes first and the
    rest speed up. This is the bound a fan-out meets on a machine whose CPUs
    its shards' nodes share -- higher than ``max(longest, total / cpus)``,
    which only an ideal preemptive packing reaches.
    """
    if cpus < 1:
        raise ValueError(f"cpus must be at least 1, not {cpus}")
    ordered = sorted(works)
    elapsed = done = 0.0
    for index, work in enumerate(ordered):
        speed = min(1.0, cpus / (len(ordered) - index))
        elapsed += (work - done) / speed
        done = work
    return elapsed


def current_rss() -> int:
    """Return the resident set size of this process in bytes."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # Not Linux: the high-water mark is the best available figure.
        return peak_rss_ever()


def peak_rss_ever() -> int:
    """Return the process's lifetime peak RSS in bytes (getrusage)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kib) * 1024


class RssSampler:
    """Peak RSS of this process while the ``with`` block runs (sampled every ``interval_s``)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, current_rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.peak_bytes = current_rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="elearn-bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, current_rss())

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / MIB
