"""The metrics histogram: percentiles estimated from bucket counts, as Prometheus does.

A Histogram holds non-cumulative counts keyed by the label of each bucket's upper bound
("+Inf" for values above the highest). Percentiles are interpolated linearly within the
bucket that holds the rank, so they are estimates: exact only where observations are
spread evenly inside their buckets, which is what the known cases below are built on.
"""

from __future__ import annotations

import pytest

from core.metrics_store import DURATION_BUCKETS_MS, INF, RATE_BUCKETS, Histogram

TENS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


def label(bound: float) -> str:
    return f"{bound:g}"


def histogram_of(values: list[float], bounds=DURATION_BUCKETS_MS) -> Histogram:
    """Observations put into buckets the Prometheus way: the smallest bound >= the value."""
    histogram = Histogram(bounds)
    for value in values:
        bucket = next((label(b) for b in bounds if value <= b), INF)
        histogram.counts[bucket] = histogram.counts.get(bucket, 0) + 1
        histogram.total += value
    return histogram


# --- quantiles -----------------------------------------------------------------------------


def test_evenly_filled_buckets_give_exact_percentiles():
    histogram = Histogram(TENS, {label(b): 10 for b in TENS})

    assert histogram.count == 100
    assert histogram.quantile(0.5) == pytest.approx(50)
    assert histogram.quantile(0.25) == pytest.approx(25)
    assert histogram.quantile(0.95) == pytest.approx(95)
    assert histogram.quantile(0.99) == pytest.approx(99)
    assert histogram.quantile(1.0) == pytest.approx(100)


def test_one_to_a_hundred_ms_on_the_duration_buckets():
    histogram = histogram_of([float(ms) for ms in range(1, 101)])

    assert histogram.count == 100
    # Values are evenly spread inside the 30-50, 50-70 and 70-100 buckets: interpolation
    # lands on the true percentiles.
    assert histogram.quantile(0.5) == pytest.approx(50)
    assert histogram.quantile(0.95) == pytest.approx(95)
    assert histogram.quantile(0.99) == pytest.approx(99)
    assert histogram.quantile(0.6) == pytest.approx(60)


def test_a_rank_inside_a_bucket_is_interpolated_between_its_bounds():
    # Four observations between 700 and 1000 ms: the median is half way through the bucket.
    histogram = Histogram(DURATION_BUCKETS_MS, {"1000": 4})

    assert histogram.quantile(0.5) == pytest.approx(850)
    assert histogram.quantile(0.25) == pytest.approx(775)
    assert histogram.quantile(1.0) == pytest.approx(1000)


def test_the_first_bucket_starts_at_zero():
    histogram = Histogram(TENS, {"10": 2})

    assert histogram.quantile(0.5) == pytest.approx(5)


def test_empty_buckets_between_observations_are_skipped():
    histogram = Histogram((10, 20, 50, 100), {"10": 5, "100": 5})

    assert histogram.quantile(0.5) == pytest.approx(10)  # the rank is the last of the first 5
    # The sixth observation is in the 50-100 bucket, a fifth of the way through it.
    assert histogram.quantile(0.6) == pytest.approx(60)
    assert histogram.quantile(0.9) == pytest.approx(90)


def test_percentiles_never_decrease_with_q():
    histogram = histogram_of([0.4, 3, 3, 8, 12, 45, 46, 47, 300, 2500, 2600, 9000])
    qs = [q / 20 for q in range(1, 21)]

    values = [histogram.quantile(q) for q in qs]

    assert values == sorted(values), values
    assert values[0] > 0
    assert values[-1] == pytest.approx(10_000)  # 9000 ms is in the 7000-10000 bucket


def test_an_empty_histogram_has_no_percentiles():
    histogram = Histogram(DURATION_BUCKETS_MS)

    assert histogram.count == 0
    for q in (0.5, 0.95, 0.99):
        assert histogram.quantile(q) is None


def test_observations_above_every_bound_report_the_highest_bound():
    histogram = Histogram(DURATION_BUCKETS_MS, {INF: 7}, total=7 * 400_000.0)

    assert histogram.count == 7
    for q in (0.01, 0.5, 0.99):
        assert histogram.quantile(q) == DURATION_BUCKETS_MS[-1] == 300_000


def test_a_rank_in_the_inf_bucket_reports_the_highest_bound_and_lower_ranks_interpolate():
    histogram = Histogram(RATE_BUCKETS, {"10": 50, INF: 50})

    assert histogram.quantile(0.5) == pytest.approx(10)
    assert histogram.quantile(0.25) == pytest.approx(8.5)  # 7 + 3 * 25/50
    assert histogram.quantile(0.95) == RATE_BUCKETS[-1] == 1_000


# --- cumulative buckets (what Prometheus is sent) -------------------------------------------


def test_cumulative_counts_every_bound_in_order_and_ends_with_inf_equal_to_the_count():
    histogram = Histogram(TENS, {"10": 2, "30": 3, "100": 1, INF: 4})

    cumulative = histogram.cumulative()

    assert [name for name, _ in cumulative] == [*map(label, TENS), "+Inf"]
    assert cumulative == [
        ("10", 2),
        ("20", 2),
        ("30", 5),
        ("40", 5),
        ("50", 5),
        ("60", 5),
        ("70", 5),
        ("80", 5),
        ("90", 5),
        ("100", 6),
        ("+Inf", 10),
    ]
    assert cumulative[-1] == (INF, histogram.count)


def test_cumulative_of_the_duration_buckets_uses_their_labels():
    histogram = histogram_of([0.5, 1_200.0, 45_000.0, 250_000.0, 999_999.0])

    cumulative = dict(histogram.cumulative())

    assert len(cumulative) == len(DURATION_BUCKETS_MS) + 1
    assert cumulative["1"] == 1
    assert cumulative["1000"] == 1
    assert cumulative["1500"] == 2
    assert cumulative["60000"] == 3
    assert cumulative["300000"] == 4
    assert cumulative["+Inf"] == 5 == histogram.count


def test_cumulative_of_an_empty_histogram_is_all_zero():
    cumulative = Histogram(RATE_BUCKETS).cumulative()

    assert len(cumulative) == len(RATE_BUCKETS) + 1
    assert {count for _, count in cumulative} == {0}


# --- the summary the JSON report shows ------------------------------------------------------


def test_summary_has_the_count_the_average_and_the_percentiles():
    histogram = histogram_of([1.0, 2.0, 3.5, 100.25])

    summary = histogram.summary()

    assert set(summary) == {"count", "avg", "p50", "p95", "p99"}
    assert summary["count"] == 4
    assert summary["avg"] == pytest.approx(26.69)  # 106.75 / 4, rounded to 2 decimals
    assert summary["p50"] == pytest.approx(2.0)
    assert summary["p95"] == pytest.approx(round(histogram.quantile(0.95), 2))
    assert summary["p99"] == pytest.approx(round(histogram.quantile(0.99), 2))
    assert summary["p50"] <= summary["p95"] <= summary["p99"] <= 150


def test_summary_rounds_to_two_decimals():
    histogram = Histogram(TENS, {"10": 3}, total=10.0)

    summary = histogram.summary()

    assert summary["avg"] == 3.33
    assert summary["p50"] == 5.0
    assert summary["p95"] == 9.5
    assert summary["p99"] == 9.9


def test_summary_of_an_empty_histogram():
    assert Histogram(RATE_BUCKETS).summary() == {
        "count": 0,
        "avg": None,
        "p50": None,
        "p95": None,
        "p99": None,
    }
