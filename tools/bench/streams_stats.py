"""What one case of the streams benchmark measured (every analysis with the
time it arrived, and each process's peak RSS) and the figures the report
derives from it: the same definitions for element streams and HTTP clients."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Analysis:
    stream: str
    done_s: float  # the driver's monotonic clock when the result reached it
    latency_ms: float
    tokens: int
    vision_cached: bool = False


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


@dataclass
class Measured:
    """One case: `streams` streams in `processes` processes (1: all in one;
    `streams`: one each, the baseline)."""
    streams: int
    processes: int
    analyses: list[Analysis] = field(default_factory=list)
    peak_rss_kb: list[int] = field(default_factory=list)  # one per process
    # HTTP only: each timed round's wall time, from its first request sent to its last answer.
    rounds_s: list[float] = field(default_factory=list)

    def _warm(self) -> tuple[float, list[Analysis]]:
        """Each stream's first analysis is its warm-up (first-run costs); the
        timed window opens when the last stream has warmed up."""
        first: dict[str, Analysis] = {}
        for a in self.analyses:
            first.setdefault(a.stream, a)
        start = max(a.done_s for a in first.values())
        return start, [a for a in self.analyses if a.done_s > start]

    @property
    def timed(self) -> list[Analysis]:
        return self._warm()[1]

    @property
    def per_second(self) -> float:
        """Analyses per second of all streams together, over the timed window."""
        start, timed = self._warm()
        if not timed:
            return math.nan
        return len(timed) / (max(a.done_s for a in timed) - start)

    @property
    def per_stream(self) -> float:
        return self.per_second / self.streams

    def latency_ms(self, p: float) -> float:
        lat = [a.latency_ms for a in self.timed]
        return percentile(lat, p) if lat else math.nan

    @property
    def rss_kb(self) -> int:
        """The processes' peaks added up (for one process, its peak)."""
        return sum(self.peak_rss_kb)

    @property
    def median_round_s(self) -> float:
        return statistics.median(self.rounds_s) if self.rounds_s else math.nan

    @property
    def vision_cached(self) -> int:
        return sum(1 for a in self.timed if a.vision_cached)
