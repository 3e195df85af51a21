"""The set checker (Jepsen's set workload): compare what the writer was told with what an
independent read finds afterwards.

    acked       acknowledged writes
    lost        acknowledged but missing from the read        (must be empty when durable)
    recovered   outcome unknown, but present                  (fine: the write did land)
    unexpected  present but never attempted, or failed-for-sure but present
    missing_unknown  outcome unknown and absent                (fine: it did not land)
"""

from __future__ import annotations

from dataclasses import dataclass

from datakit.drills.writer import Recorder


@dataclass
class SetCheck:
    attempted: int
    acked: int
    failed: int
    unknown: int
    lost: list[int]
    recovered: list[int]
    unexpected: list[int]
    read: int

    @property
    def valid(self) -> bool:
        return not self.lost and not self.unexpected

    def as_json(self) -> dict:
        return {"attempted": self.attempted, "acked": self.acked, "failed": self.failed,
                "unknown": self.unknown, "lost": len(self.lost), "lost_ids": self.lost,
                "recovered": len(self.recovered), "recovered_ids": self.recovered,
                "unexpected": len(self.unexpected), "unexpected_ids": self.unexpected,
                "read": self.read, "valid": self.valid}


def check(rec: Recorder, present: set[int]) -> SetCheck:
    ok, failed, unknown = rec.ids("ok"), rec.ids("fail"), rec.ids("unknown")
    attempted = ok | failed | unknown
    return SetCheck(
        attempted=len(attempted), acked=len(ok), failed=len(failed), unknown=len(unknown),
        lost=sorted(ok - present), recovered=sorted(unknown & present),
        unexpected=sorted((present - attempted) | (failed & present)), read=len(present))


def check_restore(rec: Recorder, expected: set[int], restored: set[int]) -> SetCheck:
    """A restore to a point: `expected` is what was committed at that point (read when the
    point was made); lost is expected but not restored, unexpected restored but not expected."""
    ok, failed, unknown = rec.ids("ok"), rec.ids("fail"), rec.ids("unknown")
    return SetCheck(
        attempted=len(ok | unknown | failed), acked=len(ok & expected), failed=len(failed),
        unknown=len(unknown), lost=sorted(expected - restored),
        recovered=sorted(unknown & restored), unexpected=sorted(restored - expected),
        read=len(restored))


def acked_before(rec: Recorder, t_point: float) -> set[int]:
    """Writes acknowledged before the point: a restore must hold every one of them."""
    return {o.id for o in rec.ops if o.status == "ok" and o.end <= t_point}
