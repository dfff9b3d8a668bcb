"""The differences of a collection run, flagged for the co-operative: what each grower
brought against what was expected, and what the hub received from each point against what
the point sent on. One pure function of the run's figures, in grams; the API and the pages
show what it gives.

A difference within the run's tolerance (a share of the figure it is measured against) is
shown but not flagged: a harvest estimate is never exact, and produce loses some water on
the road.
"""

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from originlive.logistics.collection.models import Grade, RunStatus


class Flag(enum.StrEnum):
    SHORT = "short"  # less than expected (a grower) or than was sent (at the hub)
    OVER = "over"  # more
    REJECTED = "rejected"  # graded as rejected at the point: nothing of it goes on
    NOT_WEIGHED = "not_weighed"  # the run left without this grower's produce
    NOT_RECEIVED = "not_received"  # the run is received, but nothing was recorded from here


# Weighing is over once a run is dispatched: a grower not weighed by then never came.
AFTER_COLLECTING = frozenset({RunStatus.IN_TRANSIT, RunStatus.RECEIVED, RunStatus.CLOSED})
DONE = frozenset({RunStatus.RECEIVED, RunStatus.CLOSED})


@dataclass(frozen=True, slots=True)
class Grower:
    """What the comparison needs of a booked grower."""

    id: int
    point_id: int
    expected_grams: int
    weighed_grams: int | None
    grade: Grade | None


@dataclass(frozen=True, slots=True)
class GrowerDifference:
    grower_id: int
    accepted_grams: int | None  # what goes on to the hub: none of a rejected delivery
    difference_grams: int | None  # weighed minus expected; None until weighed
    flag: Flag | None


@dataclass(slots=True)
class PointDifference:
    point_id: int
    growers: int = 0
    expected_grams: int = 0
    weighed_grams: int = 0  # everything weighed, rejected produce included
    sent_grams: int = 0  # weighed and not rejected: what should arrive at the hub
    rejected_grams: int = 0
    received_grams: int | None = None  # None until the hub has recorded it
    difference_grams: int | None = None  # received minus sent
    flag: Flag | None = None
    by_grade: dict[Grade, int] = field(default_factory=dict)


def beyond(actual: int, reference: int, tolerance_percent: int) -> Flag | None:
    """``SHORT`` or ``OVER`` when ``actual`` is further from ``reference`` than the tolerance
    (a share of ``reference``: anything at all when ``reference`` is 0), else None."""
    gap = actual - reference
    if abs(gap) * 100 <= reference * tolerance_percent:  # integers: no rounding at the edge
        return None
    return Flag.SHORT if gap < 0 else Flag.OVER


def grower_difference(
    grower: Grower, *, status: RunStatus, tolerance_percent: int
) -> GrowerDifference:
    """What a grower brought against what was expected."""
    if grower.weighed_grams is None or grower.grade is None:
        flag = Flag.NOT_WEIGHED if status in AFTER_COLLECTING else None
        return GrowerDifference(grower.id, None, None, flag)
    if grower.grade is Grade.REJECTED:
        return GrowerDifference(
            grower.id, 0, grower.weighed_grams - grower.expected_grams, Flag.REJECTED
        )
    return GrowerDifference(
        grower.id,
        grower.weighed_grams,
        grower.weighed_grams - grower.expected_grams,
        beyond(grower.weighed_grams, grower.expected_grams, tolerance_percent),
    )


@dataclass(frozen=True, slots=True)
class RunDifferences:
    growers: dict[int, GrowerDifference]
    points: list[PointDifference]  # in the order their first grower was booked

    @property
    def flagged(self) -> int:
        """How many growers and points are flagged."""
        return sum(g.flag is not None for g in self.growers.values()) + sum(
            p.flag is not None for p in self.points
        )


def differences(
    growers: Sequence[Grower],
    received: dict[int, int],
    *,
    status: RunStatus,
    tolerance_percent: int,
) -> RunDifferences:
    """Every grower's and every point's difference; ``received``: grams by point, for the
    points the hub has recorded."""
    by_grower = {
        g.id: grower_difference(g, status=status, tolerance_percent=tolerance_percent)
        for g in growers
    }
    points: dict[int, PointDifference] = {}
    for grower in growers:
        point = points.setdefault(grower.point_id, PointDifference(grower.point_id))
        point.growers += 1
        point.expected_grams += grower.expected_grams
        if grower.weighed_grams is None or grower.grade is None:
            continue
        point.weighed_grams += grower.weighed_grams
        point.by_grade[grower.grade] = point.by_grade.get(grower.grade, 0) + grower.weighed_grams
        if grower.grade is Grade.REJECTED:
            point.rejected_grams += grower.weighed_grams
        else:
            point.sent_grams += grower.weighed_grams
    for point in points.values():
        if point.point_id in received:
            point.received_grams = received[point.point_id]
            point.difference_grams = point.received_grams - point.sent_grams
            point.flag = beyond(point.received_grams, point.sent_grams, tolerance_percent)
        elif status in DONE and point.sent_grams > 0:
            point.flag = Flag.NOT_RECEIVED
    return RunDifferences(by_grower, list(points.values()))


def awaited(points: Iterable[PointDifference], received: Iterable[int]) -> set[int]:
    """The points that sent produce on and that the hub has not yet recorded."""
    return {p.point_id for p in points if p.sent_grams > 0} - set(received)
