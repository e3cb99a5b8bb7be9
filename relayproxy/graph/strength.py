"""Connection strength: how well a team member knows a person, from their mail alone.

Theory of operation: `strength` is a pure function of one member's interaction history with
one person and a fixed `now`. docs/strength.md has the reasoning and a worked example.

Each message has a *weight*: ``2 ** -(age / 90 days) / sqrt(recipients)`` — old mail fades,
halving every 90 days, and mail to a crowd says less about each member of it. Each message
also keeps contact "lit" for the fortnight after it. Per direction, the *volume* is the lit
area in fortnights, where overlapping light counts once, at the weightiest message's weight:
a lone message adds its weight; twenty replies in one afternoon add little more than one; a
message two weeks or more after the previous one adds its full weight. This is Gmail's
"interactions rank" (Roth et al., KDD 2010) with bursts folded into occasions. One pass per
direction, in time order, with a monotonic stack, computes OUT (member -> person) and IN.

The four components, each 0..1, explain the score on the person page:

    frequency   = 1 - exp(-(OUT + IN) / 6)              how much recent mail
    reciprocity = 2 * min(OUT, IN) / (OUT + IN)         how even the two directions are
    recency     = 2 ** -(days since the latest mail, either way / 90)
    regularity  = 1 - 2 ** -(occasions / 3)             how many separate occasions

where occasions is the lit time of both directions, unweighted and over all time, in
fortnights, halved (a message and its reply are one occasion). The score, 0..100:

    exchange = 1 - (1 - frequency) ** reciprocity       (= 1 - exp(-2 * min(OUT, IN) / 6))
    base     = 0.8 * exchange + 0.14 * (1 - exp(-OUT / 6)) + 0.06 * (1 - exp(-IN / 6))
    score    = 100 * base * (0.5 + 0.5 * regularity) * (0.5 + 0.5 * recency)

`exchange` is zero unless mail went both ways, so one-way mail scores below 14 (all from the
member) or 6 (all from the person): under `Medium` (25) and `Weak` (10). More mail only adds
lit area, occasions and recency, so it never lowers the score (exactly for the newest mail, to
rounding for backfilled mail); a later `now` only fades them.

Interactions dated after `now` (clock skew) count as sent at `now`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

DEGREES = ("Very Strong", "Strong", "Medium", "Weak", "Very Weak", "No Connection")

# Lowest score for each degree, strongest first; anything lower is "No Connection".
THRESHOLDS: tuple[tuple[float, str], ...] = (
    (70.0, "Very Strong"),
    (45.0, "Strong"),
    (25.0, "Medium"),
    (10.0, "Weak"),
    (2.0, "Very Weak"),
)

HALF_LIFE_DAYS = 90.0  # a message's weight, and recency, halve every 90 days
LIT_DAYS = 14.0  # each message keeps contact lit this long; closer mail shares the time
VOLUME_SCALE = 6.0  # effective messages at which frequency reaches 1 - 1/e (0.63)
OCCASION_SCALE = 3.0  # occasions at which regularity reaches 0.5

EXCHANGE_SHARE = 0.8  # of the base: two-way exchange
OUTBOUND_SHARE = 0.14  # of the base: the member writing (outgoing mail says more; Roth et al.)
INBOUND_SHARE = 0.06  # of the base: the person writing

_DAY = 86400.0
_DECAY_PER_SECOND = math.log(2) / (HALF_LIFE_DAYS * _DAY)
_LIT_SECONDS = LIT_DAYS * _DAY
_AUDIENCE = [0.0] + [1.0 / math.sqrt(n) for n in range(1, 257)]  # 1 / sqrt(recipients)
# Weights are computed relative to a fixed anchor, not to `now`, and scaled to `now` once at
# the end: moving `now` then changes one factor only, so the score falls exactly monotonically.
# exp() stays finite while `now` is within 200 years of the anchor; beyond, `now` is the anchor.
_ANCHOR = 946684800.0  # 2000-01-01T00:00:00Z
_ANCHOR_SPAN = 200 * 365 * _DAY
_RANK = {degree: rank for rank, degree in enumerate(reversed(DEGREES))}


@dataclass(frozen=True, slots=True)
class Interaction:
    """One message between a member and a person."""

    at: datetime  # aware UTC
    outbound: bool  # True: the member wrote to the person; False: the person wrote to the member
    recipients: int = 1  # how many recipients the message had (>= 1); more recipients weigh less

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(
                f"Interaction time {self.at.isoformat()} has no time zone; pass an aware UTC "
                "datetime (datetime(..., tzinfo=UTC))."
            )


@dataclass(frozen=True, slots=True)
class Strength:
    """A connection's degree, its score and the components behind it."""

    degree: str  # one of DEGREES
    score: float  # 0..100
    frequency: float  # each component 0..1
    reciprocity: float
    recency: float
    regularity: float

    def as_dict(self) -> dict[str, float | str]:
        """The fields for JSON and templates: score to 0.1, components to 0.001."""
        return {
            "degree": self.degree,
            "score": round(self.score, 1),
            "frequency": round(self.frequency, 3),
            "reciprocity": round(self.reciprocity, 3),
            "recency": round(self.recency, 3),
            "regularity": round(self.regularity, 3),
        }


NO_CONNECTION = Strength("No Connection", 0.0, 0.0, 0.0, 0.0, 0.0)


def _direction(times: list[tuple[float, int]], anchor: float) -> tuple[float, float, float]:
    """One direction's lit area (weight x seconds, at the anchor), occasions and latest time."""
    # Ties sort fewest recipients (weightiest) first, and the rest of a tie add nothing: so
    # adding mail at the newest instant only ever appends a non-negative term to the sums.
    times.sort()
    area = occasions = 0.0
    previous = -math.inf
    lit_for = _LIT_SECONDS
    # The light still shining from earlier mail: (time, weight), weights strictly falling.
    shining: deque[tuple[float, float]] = deque()
    for at, recipients in times:
        gap = at - previous
        occasions += 1.0 if gap >= lit_for else gap / lit_for
        previous = at
        factor = _AUDIENCE[recipients] if recipients < 257 else 1.0 / math.sqrt(recipients)
        weight = factor * math.exp((at - anchor) * _DECAY_PER_SECOND)
        dark = at - lit_for  # light from mail at or before this has gone out by `at`
        while shining and shining[0][0] <= dark:
            shining.popleft()
        # New light beyond the end of the earlier light...
        added = weight * (at - shining[-1][0] if shining else lit_for)
        # ...and where it outshines dimmer earlier light, the difference.
        while shining and shining[-1][1] <= weight:
            lit_at, lit_weight = shining.pop()
            start = shining[-1][0] if shining else dark
            added += (weight - lit_weight) * (lit_at - start)
        shining.append((at, weight))
        area += added
    return area, occasions, previous


def _degree(score: float) -> str:
    for floor, degree in THRESHOLDS:
        if score >= floor:
            return degree
    return "No Connection"


def strength(interactions: Iterable[Interaction], now: datetime) -> Strength:
    """Score one member's history with one person as of `now` (aware UTC)."""
    if now.tzinfo is None:
        raise ValueError(f"now={now.isoformat()} has no time zone; pass an aware UTC datetime.")
    now_ts = now.timestamp()
    sent: list[tuple[float, int]] = []
    received: list[tuple[float, int]] = []
    for interaction in interactions:
        at = interaction.at.timestamp()
        if at > now_ts:
            at = now_ts  # dated in the future: clock skew, count it as arriving now
        recipients = interaction.recipients
        if recipients < 1:
            recipients = 1
        (sent if interaction.outbound else received).append((at, recipients))
    if not sent and not received:
        return NO_CONNECTION

    anchor = _ANCHOR if abs(now_ts - _ANCHOR) < _ANCHOR_SPAN else now_ts
    out_area, occasions_out, last_out = _direction(sent, anchor)
    in_area, occasions_in, last_in = _direction(received, anchor)
    to_now = math.exp((anchor - now_ts) * _DECAY_PER_SECOND) / _LIT_SECONDS
    out, inn = out_area * to_now, in_area * to_now
    volume = out + inn

    frequency = -math.expm1(-volume / VOLUME_SCALE)
    reciprocity = 2.0 * min(out, inn) / volume if volume > 0.0 else 0.0
    exchange = -math.expm1(-2.0 * min(out, inn) / VOLUME_SCALE)
    recency = math.exp((max(last_out, last_in) - now_ts) * _DECAY_PER_SECOND)
    regularity = -math.expm1(-(occasions_out + occasions_in) / 2.0 / OCCASION_SCALE * math.log(2))

    base = (
        EXCHANGE_SHARE * exchange
        + OUTBOUND_SHARE * -math.expm1(-out / VOLUME_SCALE)
        + INBOUND_SHARE * -math.expm1(-inn / VOLUME_SCALE)
    )
    score = 100.0 * base * (0.5 + 0.5 * regularity) * (0.5 + 0.5 * recency)
    return Strength(_degree(score), score, frequency, reciprocity, recency, regularity)


def degree_rank(degree: str) -> int:
    """Sort key for a degree: 0 for "No Connection" up to 5 for "Very Strong"."""
    try:
        return _RANK[degree]
    except KeyError:
        raise ValueError(
            f"{degree!r} is not a connection degree; use one of {', '.join(DEGREES)}."
        ) from None


def strongest(degrees: Iterable[str]) -> str:
    """The team's degree: the strongest of its members' ("No Connection" if none)."""
    return max(degrees, key=degree_rank, default="No Connection")
