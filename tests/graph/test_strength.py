"""Connection strength: the properties DESIGN.md and issue 2 ask for, checked with hypothesis.

Every test uses the fixed `NOW`; histories are drawn up to three years back.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayproxy.graph.strength import (
    DEGREES,
    NO_CONNECTION,
    THRESHOLDS,
    Interaction,
    degree_rank,
    strength,
    strongest,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
YEAR = 365 * DAY

ages = st.timedeltas(min_value=timedelta(0), max_value=3 * YEAR)
recipient_counts = st.integers(min_value=1, max_value=50)


@st.composite
def interactions(draw: st.DrawFn, outbound: bool | None = None) -> Interaction:
    """One message dated between three years ago and `NOW`."""
    direction = draw(st.booleans()) if outbound is None else outbound
    return Interaction(NOW - draw(ages), direction, draw(recipient_counts))


histories = st.lists(interactions(), max_size=40)


def score(history: list[Interaction], now: datetime = NOW) -> float:
    return strength(history, now).score


def newest(history: list[Interaction]) -> datetime:
    return max((i.at for i in history), default=NOW - 3 * YEAR)


# --- no mail --------------------------------------------------------------------------------


def test_no_interactions_is_no_connection_with_score_zero() -> None:
    result = strength([], NOW)
    assert result == NO_CONNECTION
    assert (result.degree, result.score) == ("No Connection", 0.0)


# --- grows with the frequency of two-way exchange ---------------------------------------------


@given(histories, st.booleans(), recipient_counts, st.floats(0, 1))
def test_adding_newer_mail_never_lowers_the_score(
    history: list[Interaction], outbound: bool, recipients: int, where: float
) -> None:
    start = newest(history)
    added = Interaction(start + (NOW - start) * where, outbound, recipients)
    assert score([*history, added]) >= score(history)


@given(histories, interactions())
def test_backfilled_mail_never_lowers_the_score_beyond_rounding(
    history: list[Interaction], older: Interaction
) -> None:
    before = score(history)
    assert score([*history, older]) >= before * (1 - 1e-12)


@given(histories, recipient_counts, st.floats(0, 1))
def test_answering_in_the_scarcer_direction_never_lowers_the_score(
    history: list[Interaction], recipients: int, where: float
) -> None:
    sent = sum(i.outbound for i in history)
    scarcer_is_outbound = sent <= len(history) - sent
    start = newest(history)
    added = Interaction(start + (NOW - start) * where, scarcer_is_outbound, recipients)
    before, after = strength(history, NOW), strength([*history, added], NOW)
    assert after.score >= before.score
    if history and (sent == 0 or sent == len(history)):  # one-way until now: the first reply
        assert after.score > before.score


# --- needs mail in both directions to rise above Weak ------------------------------------------


@given(st.lists(interactions(outbound=True), min_size=1, max_size=200))
def test_mail_only_from_the_member_is_at_most_weak(history: list[Interaction]) -> None:
    result = strength(history, NOW)
    assert degree_rank(result.degree) <= degree_rank("Weak")
    assert result.reciprocity == 0.0


@given(st.lists(interactions(outbound=False), min_size=1, max_size=200))
def test_cold_inbound_mail_is_at_most_very_weak(history: list[Interaction]) -> None:
    result = strength(history, NOW)
    assert result.degree in ("No Connection", "Very Weak")
    assert result.reciprocity == 0.0


def test_one_unanswered_message_is_no_connection() -> None:
    assert strength([Interaction(NOW - DAY, False)], NOW).degree == "No Connection"


# --- decays with time since the last exchange -------------------------------------------------


@given(histories, st.timedeltas(timedelta(0), 3 * YEAR))
def test_time_passing_never_raises_the_score(history: list[Interaction], later: timedelta) -> None:
    before, after = strength(history, NOW), strength(history, NOW + later)
    assert after.score <= before.score
    assert after.recency <= before.recency


def test_half_life_is_ninety_days() -> None:
    exchange = [Interaction(NOW, True), Interaction(NOW, False)]
    assert strength(exchange, NOW + 90 * DAY).recency == pytest.approx(0.5)
    assert strength(exchange, NOW + 180 * DAY).recency == pytest.approx(0.25)


# --- rewards regular contact over one burst ---------------------------------------------------


@given(
    exchanges=st.integers(2, 30),
    span=st.timedeltas(28 * DAY, YEAR),
    burst=st.timedeltas(timedelta(0), DAY),
    reply=st.timedeltas(timedelta(0), timedelta(hours=1)),
    lag=st.timedeltas(timedelta(0), 2 * YEAR),
    recipients=st.integers(1, 20),
)
def test_regular_contact_beats_one_burst_of_the_same_mail(
    exchanges: int,
    span: timedelta,
    burst: timedelta,
    reply: timedelta,
    lag: timedelta,
    recipients: int,
) -> None:
    last = NOW - lag

    def spread_over(period: timedelta) -> list[Interaction]:
        """`exchanges` exchanges (a mail and its reply) evenly over `period`, ending at `last`."""
        history = []
        for k in range(exchanges):
            answered = last - period * k / (exchanges - 1)
            history.append(
                Interaction(answered - min(reply, period / (2 * exchanges)), True, recipients)
            )
            history.append(Interaction(answered, False, recipients))
        return history

    regular, bursty = spread_over(span), spread_over(burst)
    assert max(i.at for i in regular) == max(i.at for i in bursty) == last
    assert score(regular) > score(bursty)


# --- weights a message less the more recipients it has ----------------------------------------


@given(histories, st.data())
def test_more_recipients_never_raise_the_score(
    history: list[Interaction], data: st.DataObject
) -> None:
    if not history:
        return
    index = data.draw(st.integers(0, len(history) - 1))
    crowded = list(history)
    one = history[index]
    crowded[index] = Interaction(
        one.at, one.outbound, one.recipients + data.draw(st.integers(1, 100))
    )
    assert score(crowded) <= score(history)


@given(st.lists(interactions(), max_size=20), ages, ages, st.booleans())
def test_a_message_to_twenty_counts_less_than_a_message_to_one(
    others: list[Interaction], age: timedelta, reply_age: timedelta, outbound: bool
) -> None:
    # The compared message is the only one in its direction, so nothing else masks it.
    history = [i for i in others if i.outbound != outbound]
    history.append(Interaction(NOW - reply_age, not outbound))

    def with_message(recipients: int) -> float:
        return score([*history, Interaction(NOW - age, outbound, recipients)])

    assert with_message(20) < with_message(1)


# --- deterministic, order-free, future dates, bounds -----------------------------------------


@given(histories, st.randoms(use_true_random=False))
def test_input_order_does_not_matter(history: list[Interaction], rng: random.Random) -> None:
    shuffled = list(history)
    rng.shuffle(shuffled)
    assert strength(shuffled, NOW) == strength(history, NOW)
    assert strength(iter(history), NOW) == strength(history, NOW)


@given(histories, st.booleans(), recipient_counts, st.timedeltas(timedelta(0), YEAR))
def test_mail_dated_after_now_counts_as_now(
    history: list[Interaction], outbound: bool, recipients: int, ahead: timedelta
) -> None:
    future = Interaction(NOW + ahead, outbound, recipients)
    present = Interaction(NOW, outbound, recipients)
    assert strength([*history, future], NOW) == strength([*history, present], NOW)


@given(histories)
def test_score_components_and_degree_stay_in_range(history: list[Interaction]) -> None:
    result = strength(history, NOW)
    assert 0.0 <= result.score <= 100.0
    for component in (result.frequency, result.reciprocity, result.recency, result.regularity):
        assert 0.0 <= component <= 1.0
    expected = next((d for floor, d in THRESHOLDS if result.score >= floor), "No Connection")
    assert result.degree == expected


@pytest.mark.parametrize("year", [1, 1700, 2199, 2201, 9999])
def test_any_now_is_scored_without_overflow(year: int) -> None:
    now = datetime(year, 6, 1, tzinfo=UTC)
    history = [Interaction(now - k * DAY, k % 2 == 0) for k in range(5)]
    history.append(Interaction(datetime(1, 1, 1, tzinfo=UTC), True))
    result = strength(history, now)
    assert result.degree == "Weak"
    assert 0.0 < result.score < 100.0


def test_naive_times_are_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Interaction(datetime(2026, 1, 1), True)
    with pytest.raises(ValueError, match="time zone"):
        strength([], datetime(2026, 1, 1))


def test_as_dict_rounds_for_display() -> None:
    history = [Interaction(NOW - k * 30 * DAY, k % 2 == 0) for k in range(12)]
    shown = strength(history, NOW).as_dict()
    assert set(shown) == {"degree", "score", "frequency", "reciprocity", "recency", "regularity"}
    assert shown["degree"] in DEGREES


# --- the worked example of docs/strength.md ---------------------------------------------------


def test_worked_example_from_the_docs() -> None:
    # Four monthly exchanges: the member wrote 100, 70, 40 and 10 days ago (the mail of 40 days
    # ago to 4 people), and the person replied a day after each.
    history = []
    for age in (100, 70, 40, 10):
        history.append(Interaction(NOW - age * DAY, True, 4 if age == 40 else 1))
        history.append(Interaction(NOW - (age - 1) * DAY, False))
    assert strength(history, NOW).as_dict() == {
        "degree": "Medium",
        "score": 38.8,
        "frequency": 0.57,
        "reciprocity": 0.923,
        "recency": 0.933,
        "regularity": 0.603,
    }


# --- the team's degree ------------------------------------------------------------------------


def test_degrees_rank_strongest_first() -> None:
    ranks = [degree_rank(d) for d in DEGREES]
    assert ranks == sorted(ranks, reverse=True)
    assert degree_rank("No Connection") == 0


@given(st.lists(st.sampled_from(DEGREES)))
def test_the_team_degree_is_the_strongest_members(degrees: list[str]) -> None:
    team = strongest(degrees)
    if not degrees:
        assert team == "No Connection"
    else:
        assert team in degrees
        assert all(degree_rank(team) >= degree_rank(d) for d in degrees)


def test_unknown_degree_is_refused() -> None:
    with pytest.raises(ValueError, match="not a connection degree"):
        degree_rank("Besties")
