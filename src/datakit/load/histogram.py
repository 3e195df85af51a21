"""A microsecond latency histogram with logarithmic buckets (HdrHistogram-style).

Locust rounds response times below 100 ms to whole milliseconds, which hides what matters
for sub-millisecond database calls. Values are kept in microseconds: exact below 128 µs,
then 64 sub-buckets per power of two (relative error under 1.6 %). A histogram is a sparse
dict, merges by adding counts and travels between Locust processes as a list of pairs.
"""

from __future__ import annotations

from collections.abc import Iterable

SUB_BITS = 7  # 2**7 = 128 exact values, then 64 sub-buckets per octave


def bucket_of(us: int) -> int:
    if us < (1 << SUB_BITS):
        return max(us, 0)
    shift = us.bit_length() - SUB_BITS
    return (shift << SUB_BITS) | (us >> shift)


def value_of(bucket: int) -> float:
    """The middle of a bucket, in microseconds."""
    shift = bucket >> SUB_BITS
    if shift == 0:
        return float(bucket)
    sub = bucket & ((1 << SUB_BITS) - 1)
    return float((sub << shift) + (1 << (shift - 1)))


class Histogram:
    __slots__ = ("counts", "total", "sum_us", "max_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum_us = 0
        self.max_us = 0

    def record(self, us: int) -> None:
        b = bucket_of(us)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.total += 1
        self.sum_us += us
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: Histogram) -> Histogram:
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n
        self.total += other.total
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)
        return self

    def percentile_us(self, pct: float) -> float | None:
        """The value at `pct` (0-100); None when empty. The top percentile is the max."""
        if not self.total:
            return None
        rank = max(1, -(-self.total * pct // 100))  # ceil, at least the first sample
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(value_of(b), float(self.max_us))
        return float(self.max_us)

    def percentile_ms(self, pct: float) -> float | None:
        us = self.percentile_us(pct)
        return None if us is None else us / 1000.0

    def mean_ms(self) -> float | None:
        return self.sum_us / self.total / 1000.0 if self.total else None

    def to_wire(self) -> list:
        return [self.total, self.sum_us, self.max_us, [[b, n] for b, n in self.counts.items()]]

    @classmethod
    def from_wire(cls, wire: list) -> Histogram:
        h = cls()
        h.total, h.sum_us, h.max_us = wire[0], wire[1], wire[2]
        h.counts = {int(b): int(n) for b, n in wire[3]}
        return h

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        out = cls()
        for p in parts:
            out.merge(p)
        return out
