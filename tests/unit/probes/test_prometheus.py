"""The prometheus probe: PromQL arithmetic by hand, and real pages served on 127.0.0.1.

Pages come from ``tests/data`` (a realistic text-format page and an
OpenMetrics page, each in two scrapes with the counters advanced), served by
the real ``target_server``. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_pages import SHOP, TEXT, make_probe, page, scrape, serve, write_target
from targets import TargetServer, closed_port

from vigild.assembly import load
from vigild.config import ConfigError, ThresholdSpec
from vigild.daemon.runtime import Runtime
from vigild.model import Observation, Severity
from vigild.probes.exposition import ExpositionError, PageReader
from vigild.probes.prometheus import ACCEPT, INLINE_MAX, read_page
from vigild.probes.promql import histogram_buckets, histogram_quantile, increase
from vigild.probes.selectors import SelectorError, Series, parse_selector
from vigild.storage import Database
from vigild.thresholds import Rule, evaluate
from vigild.wording import label_value

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
MiB = 2**20
INF = math.inf


def assert_down(observation: Observation, error_start: str) -> None:
    assert observation.up is False
    assert observation.metrics["up"] == 0.0
    assert observation.error is not None
    assert observation.error.startswith(error_start), observation.error
    assert "\n" not in observation.error
    assert len(observation.error) <= 200


def rules() -> dict[str, Rule]:
    specs = {"up": ThresholdSpec(), "error_rate_percent": ThresholdSpec(warning=2, critical=5)}
    return {metric: Rule.from_spec(metric, spec) for metric, spec in specs.items()}


# ---------------------------------------------------------------------------
# histogram_quantile, worked by hand


def test_quantile_interpolates_inside_its_bucket() -> None:
    # 40 observations; q=0.5 → rank 20. Cumulative 10 at 0.1, 30 at 0.5: the rank falls
    # in (0.1, 0.5], which holds 20 of them, 10 below the rank → 0.1 + 0.4 * 10/20 = 0.3.
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (INF, 40.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    # 40 observations; q=0.9 → rank 36 > 30 (all that 0.5 holds): it falls in +Inf,
    # whose width is unknown, so PromQL answers the bound below it: 0.5.
    buckets = [(0.1, 10.0), (0.5, 30.0), (INF, 40.0)]
    assert histogram_quantile(0.9, buckets) == 0.5


def test_quantile_in_the_first_bucket_starts_from_zero() -> None:
    # Everything in (0, 0.1]; q=0.5 → rank 5 of 10 → 0 + 0.1 * 5/10 = 0.05.
    assert histogram_quantile(0.5, [(0.1, 10.0), (INF, 10.0)]) == pytest.approx(0.05)


def test_quantile_in_a_first_bucket_at_or_below_zero_is_its_bound() -> None:
    # q=0.2 → rank 2 of 10, in the first bucket (≤ -1): no lower bound to interpolate from.
    assert histogram_quantile(0.2, [(-1.0, 5.0), (0.0, 8.0), (INF, 10.0)]) == -1.0


def test_quantile_sorts_and_merges_buckets() -> None:
    # Out of order, 0.5 twice (10 + 20 = 30): the same histogram as the first test → 0.3.
    buckets = [(INF, 40.0), (0.5, 20.0), (0.1, 10.0), (1.0, 40.0), (0.5, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)


def test_quantile_forces_monotonic_counts() -> None:
    # 0.5 reports 20 after 0.1's 30: PromQL lifts it to 30. Counts 30, 30, 40, 40.
    # q=0.5 → rank 20 ≤ 30 in the first bucket → 0.1 * 20/30.
    # q=0.8 → rank 32 in (0.5, 1] (30 below, 10 in it) → 0.5 + 0.5 * 2/10 = 0.6.
    buckets = [(0.1, 30.0), (0.5, 20.0), (1.0, 40.0), (INF, 40.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 * 20 / 30)
    assert histogram_quantile(0.8, buckets) == pytest.approx(0.6)


def test_quantile_ignores_float_noise_between_buckets() -> None:
    # 1e15 + 1 after 1e15 is a relative 5e-16 difference: noise, absorbed, so all 1e15
    # observations are ≤ 1 and q=1 is 1.0. Taken at face value, q=1 would be 2.0.
    buckets = [(1.0, 1e15), (2.0, 1e15 + 1), (INF, 1e15 + 1)]
    assert histogram_quantile(1.0, buckets) == 1.0


@pytest.mark.parametrize(
    "buckets",
    [
        [(0.1, 0.0), (1.0, 0.0), (INF, 0.0)],  # no observations
        [(0.1, 5.0), (1.0, 10.0)],  # no +Inf bucket
        [(INF, 10.0)],  # nothing but +Inf
        [],
    ],
)
def test_quantile_without_an_answer_is_none(buckets: list[tuple[float, float]]) -> None:
    assert histogram_quantile(0.95, buckets) is None


def reference_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Straight from the definition, for counts where float noise cannot arise: merge equal
    bounds, take the running maximum of the counts, walk up to the first bucket that holds
    rank q * total, and interpolate linearly inside it."""
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    bounds = sorted(merged)
    if len(bounds) < 2 or bounds[-1] != INF:
        return None
    cumulative = list(itertools.accumulate((merged[b] for b in bounds), max))
    total = cumulative[-1]
    if total == 0:
        return None
    rank = q * total
    index = next(i for i, count in enumerate(cumulative) if count >= rank)
    if bounds[index] == INF:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    lower = bounds[index - 1] if index > 0 else 0.0
    below = cumulative[index - 1] if index > 0 else 0.0
    if cumulative[index] == below:
        return None
    return lower + (bounds[index] - lower) * (rank - below) / (cumulative[index] - below)


finite_bounds = st.lists(
    st.one_of(
        st.sampled_from([-1.0, 0.0, 0.005, 0.1, 0.25, 1.0, 10.0]),
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=8,
)
bucket_lists = finite_bounds.flatmap(
    lambda bounds: st.lists(
        st.integers(0, 10**6).map(float), min_size=len(bounds) + 1, max_size=len(bounds) + 1
    ).map(lambda counts: list(zip([*bounds, INF], counts, strict=True)))
)


@given(buckets=bucket_lists, q=st.floats(0, 1))
def test_quantile_matches_the_reference(buckets: list[tuple[float, float]], q: float) -> None:
    expected = reference_quantile(q, buckets)
    got = histogram_quantile(q, buckets)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(buckets=bucket_lists, qs=st.lists(st.floats(0.001, 1), min_size=2, max_size=5))
def test_quantile_is_monotone_in_q_and_within_the_buckets(
    buckets: list[tuple[float, float]], qs: list[float]
) -> None:
    finite = sorted({b for b, _ in buckets if b != INF})
    results = [histogram_quantile(q, buckets) for q in sorted(qs)]
    if any(r is None for r in results):
        return  # no observations: None for every q
    values = [r for r in results if r is not None]
    lowest = finite[0] if finite[0] <= 0 else 0.0
    # Interpolation rounds: start + (end - start) * 1.0 may pass end by an ulp or so.
    slack = 1e-9 * max(1.0, abs(lowest), abs(finite[-1]))
    for value in values:
        assert lowest - slack <= value <= finite[-1] + slack
    for smaller, larger in itertools.pairwise(values):
        assert smaller <= larger + slack


# ---------------------------------------------------------------------------
# Counter increases, worked by hand


def test_increase_sums_each_series_delta() -> None:
    # a: 10 → 15 (+5); b: 5 → 7 (+2).
    assert increase({"a": 10.0, "b": 5.0}, {"a": 15.0, "b": 7.0}) == 7.0


def test_increase_after_a_reset_is_the_new_value() -> None:
    # b went 50 → 2: the service restarted and has counted 2 since. a: +5. Total 7, not -43.
    assert increase({"a": 10.0, "b": 50.0}, {"a": 15.0, "b": 2.0}) == 7.0


def test_a_new_series_counts_from_zero() -> None:
    # c appeared with 4: created at its first increment, all 4 happened since.
    assert increase({"a": 10.0}, {"a": 10.0, "c": 4.0}) == 4.0


def test_a_vanished_series_counts_nothing() -> None:
    assert increase({"a": 10.0, "d": 100.0}, {"a": 12.0}) == 2.0


# ---------------------------------------------------------------------------
# Selectors


def labels_matched(selector: str, *label_sets: dict[str, str]) -> list[bool]:
    parsed = parse_selector(selector)
    return [parsed.matches(labels) for labels in label_sets]


def test_selector_operators_and_anchored_regexes() -> None:
    parsed = parse_selector('http_requests_total{status=~"5..",route!="/health",method="GET"}')
    assert parsed.metric == "http_requests_total"
    assert [(m.label, m.op, m.value) for m in parsed.matchers] == [
        ("status", "=~", "5.."),
        ("route", "!=", "/health"),
        ("method", "=", "GET"),
    ]
    # Fully anchored as in PromQL: "5.." matches 503, not 5030 or x503.
    assert labels_matched(
        'm{status=~"5.."}', {"status": "503"}, {"status": "5030"}, {"status": "x503"}
    ) == [True, False, False]
    assert labels_matched('m{status!~"2.."}', {"status": "200"}, {"status": "404"}) == [
        False,
        True,
    ]


def test_a_missing_label_has_the_empty_value() -> None:
    assert labels_matched('m{env=""}', {}, {"env": "prod"}) == [True, False]
    assert labels_matched('m{env!="prod"}', {}, {"env": "prod"}) == [True, False]
    assert labels_matched('m{env=~"prod|"}', {}, {"env": "dev"}) == [True, False]


def test_regex_dot_matches_newlines_as_in_prometheus_3() -> None:
    assert labels_matched('m{text=~"a.b"}', {"text": "a\nb"}) == [True]


def test_name_may_be_given_as_a_matcher() -> None:
    assert parse_selector('{__name__="up", job="x"}').metric == "up"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('m{status=~"5..', "unterminated"),
        ("rate(m[5m])", "expected a series selector"),
        ("m offset 5m", "offset and @"),
        ('{job="x"}', "must name a metric"),
        ('{__name__=~"http_.*"}', "must name"),
        ('m{a=~"("}', "invalid selector"),
        ('m{a=~"[[:alpha:]]"}', "POSIX classes"),
        ('m{a=~"\\\\pL"}', "regex"),
        ("", "invalid selector"),
    ],
)
def test_invalid_selectors_say_why(text: str, reason: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    message = str(caught.value)
    assert message.startswith("invalid selector"), message
    assert reason in message
    assert "\n" not in message


def test_invalid_selector_is_one_config_line(tmp_path: Path) -> None:
    path = tmp_path / "vigild.toml"
    path.write_text(
        "[[targets]]\n"
        'name = "shop"\n'
        'type = "prometheus"\n'
        'url = "http://127.0.0.1:9/metrics"\n'
        'requests = "http_requests_total"\n'
        "errors = 'http_requests_total{status=~\"5..'\n"
        'gauges = { depth = "sum(jobs)" }\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    problems = caught.value.problems
    assert any(
        p.startswith(f"{path}: targets[0].errors: invalid selector 'http_requests_total{{")
        for p in problems
    ), problems
    assert any(
        f"{path}: targets[0].gauges: gauge 'depth': invalid selector 'sum(jobs)'" in p
        for p in problems
    ), problems
    assert all("\n" not in p for p in problems)


# ---------------------------------------------------------------------------
# Reading pages


def read(text: str, *metrics: str, openmetrics: bool = False) -> dict[str, list[Series]]:
    return PageReader(metrics).read(text, openmetrics=openmetrics)


def test_reader_unescapes_labels_and_reads_special_values() -> None:
    got = read(page("exposition_scrape1.prom"), "http_requests_total", "app_build_info")
    routes = {s.labels["route"] for s in got["http_requests_total"]}
    assert '/search?q="quoted"&dir=C:\\temp' in routes
    [build] = got["app_build_info"]
    assert build.labels["description"] == "first line\nsecond line"
    specials = read('m{k="a"} NaN\nm{k="b"} +Inf\nm{k="c"} -Inf\nm{k="d"} 1e3 17\n', "m")
    values = [s.value for s in specials["m"]]
    assert math.isnan(values[0])
    assert values[1:] == [INF, -INF, 1000.0]


def test_reader_keeps_the_first_of_duplicate_series() -> None:
    # Label order differs, the series is the same: Prometheus keeps the first sample.
    got = read('m{a="1",b="2"} 5\nm{b="2",a="1"} 9\nm{a="2"} 1\n', "m")
    assert [(s.key, s.value) for s in got["m"]] == [('m{a="1",b="2"}', 5.0), ('m{a="2"}', 1.0)]


def test_reader_takes_apart_only_the_wanted_metrics() -> None:
    got = read(page("exposition_scrape1.prom"), "jobs_queued")
    assert list(got) == ["jobs_queued"]
    assert [s.value for s in got["jobs_queued"]] == [3.0, 7.0, 100.0]


def test_lines_outside_the_fast_grammar_go_to_the_library() -> None:
    # A quoted name (Prometheus 3's UTF-8 form) and a float timestamp: the library reads
    # them. A hex value it refuses, and so does the reader.
    got = read('{"m", a="x"} 1\nm{a="y"} 1 1.5\n', "m")
    assert [(s.labels, s.value) for s in got["m"]] == [({"a": "x"}, 1.0), ({"a": "y"}, 1.0)]
    with pytest.raises(ExpositionError, match=r"^line 1: cannot parse 'm 0x10'$"):
        read("m 0x10\n", "m")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<!DOCTYPE html>\n<html><body>Not Found</body></html>\n", "line 1: cannot parse"),
        ('{"status": "ok"}', "line 1: cannot parse"),
        ('# TYPE m counter\nm 1\nother{a="unterminated\n', "line 3: cannot parse"),
        ("m 1\nhello world\n", "line 2: cannot parse 'hello world'"),
        ('m{a="1",a="2"} 1\n', "line 1: cannot parse"),
    ],
)
def test_reader_refuses_what_is_not_an_exposition(text: str, error: str) -> None:
    with pytest.raises(ExpositionError, match="^" + error):
        read(text, "m")


@pytest.mark.parametrize(
    "text",
    [
        'm{a="b"' + " " * 2**18 + "x} 1\n",  # a long run the label regex could split many ways
        # A duplicate label sends it to the library, whose parser is quadratic in a line.
        "m{" + ",".join(f'l{i}="v"' for i in range(2**15)) + ',l0="v"} 1\n',
        "m 1" + " " * 2**18 + "x\n",
        'm{a="' + '\\"' * 2**17 + "} 1\n",
        "m{\n" * 2**16,
    ],
)
def test_hostile_lines_cost_linear_time(text: str) -> None:
    started = time.process_time()
    with pytest.raises(ExpositionError):
        read(text, "m")
    # Linear is a few ms here; a quadratic regex or parser would take minutes.
    assert time.process_time() - started < 2.0


def test_openmetrics_needs_eof_last_and_once() -> None:
    assert read("m_total 1\n# EOF\n", "m_total", openmetrics=True)["m_total"][0].value == 1.0
    with pytest.raises(ExpositionError, match="truncated"):
        read("m_total 1\n", "m_total", openmetrics=True)
    with pytest.raises(ExpositionError, match='line 2: text after "# EOF"'):
        read("m_total 1\n# EOF\nm_total 2\n# EOF\n", "m_total", openmetrics=True)


def test_reader_accepts_crlf_and_blank_lines() -> None:
    assert read("\r\nm 1\r\n\r\n", "m")["m"][0].value == 1.0


def test_histogram_without_inf_bucket_is_a_problem() -> None:
    series = read('h_bucket{le="0.1"} 1\nh_bucket{le="1"} 2\n', "h_bucket")["h_bucket"]
    assert histogram_buckets(series, "h").problem == "histogram h has no +Inf bucket"


def test_histogram_with_a_nan_bucket_is_left_out_whole() -> None:
    text = (
        'h_bucket{i="a",le="1"} NaN\nh_bucket{i="a",le="+Inf"} 4\n'
        'h_bucket{i="b",le="1"} 1\nh_bucket{i="b",le="+Inf"} 2\n'
    )
    buckets = histogram_buckets(read(text, "h_bucket")["h_bucket"], "h")
    assert buckets.problem is None
    assert sorted(buckets.counts.values()) == [1.0, 2.0]
    assert len(buckets.skipped) == 2


# Hypothesis: the fast grammar agrees with prometheus_client, and nothing escapes the reader.

names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True)
label_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
sample_values = st.one_of(
    st.integers(-(10**15), 10**15).map(str),
    st.floats().map(repr),
    st.sampled_from(["+Inf", "-Inf", "NaN", ".5", "5.", "1E3", "-0"]),
)


def sample_lines(spaces: Sequence[str] = (" ", "\t", "  ")) -> st.SearchStrategy[str]:
    """Valid sample lines with any label values, any values, and a timestamp or not."""

    @st.composite
    def lines(draw: st.DrawFn) -> str:
        name = draw(names)
        labels = draw(st.dictionaries(label_names, label_values, max_size=4))
        space = draw(st.sampled_from(spaces))
        braces = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
        line = name + (f"{{{braces}}}" if labels or draw(st.booleans()) else "")
        line += space + draw(sample_values)
        if draw(st.booleans()):
            line += space + str(draw(st.integers(0, 2**40)))
        return line

    return lines()


def pieces(*fragments: str, most: int = 6) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(fragments), max_size=most).map("".join)


# Lines that are nearly samples: braces, labels, values and tails, all a little wrong.
near_lines = st.tuples(
    st.one_of(
        st.just(""),
        pieces(
            "a",
            "le",
            "=",
            '"',
            "x",
            '\\"',
            "\\\\",
            "\\n",
            ",",
            " ",
            '"1"',
            "}",
            "{",
            "__name__",
            ":",
            "\t",
            'b="2"',
            "#",
        ).map(lambda inner: "{" + inner + "}"),
    ),
    st.sampled_from([" ", "\t", "", "  "]),
    pieces("1", "NaN", "+", "Inf", ".", "e", "-", "_", "x", "0", "5", most=4),
    st.sampled_from(["", " 123", "\t-5", " 1.5", ' # {a="b"} 1', " x", "\r", "  ", " 1 2"]),
).map("".join)


def library_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def comparable(samples: Sequence[tuple[str, dict[str, str], float]]) -> list[tuple[str, ...]]:
    """Name, sorted labels and value as text (NaN equal to NaN, -0 to 0), the first sample
    of each series only, in a fixed order."""
    firsts: dict[tuple[str, str], str] = {}
    for name, labels, value in samples:
        shown = "nan" if math.isnan(value) else repr(value + 0.0)
        firsts.setdefault((name, json.dumps(sorted(labels.items()))), shown)
    return sorted((name, labels, value) for (name, labels), value in firsts.items())


@given(lines=st.lists(sample_lines(), min_size=1, max_size=6))
def test_reader_agrees_with_prometheus_client(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    expected = library_samples(text)
    got = PageReader({name for name, _, _ in expected}).read(text, openmetrics=False)
    ours = [(name, s.labels, s.value) for name in got for s in got[name]]
    assert comparable(ours) == comparable(expected)


@given(rest=st.one_of(near_lines, st.text(alphabet=' \t{}=",\\#a_1.e+-InfNa:\r', max_size=30)))
def test_the_fast_grammar_never_reads_a_line_otherwise_than_the_library(rest: str) -> None:
    line = "m" + rest
    try:
        got = read(line, "m")
    except ExpositionError:
        return
    if not got:
        return  # another metric's line: only its shape is checked
    ours = [("m", s.labels, s.value) for s in got["m"]]
    assert comparable(ours) == comparable(library_samples(line))


@given(lines=st.lists(sample_lines(spaces=(" ",)), min_size=1, max_size=6))
def test_openmetrics_reader_agrees_with_prometheus_client(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n# EOF\n"
    try:
        expected = [
            (s.name, dict(s.labels), float(s.value))
            for family in openmetrics_families(text)
            for s in family.samples
        ]
    except ValueError:
        return  # OpenMetrics is stricter than the text format: the reader may accept more
    got = PageReader({name for name, _, _ in expected}).read(text, openmetrics=True)
    ours = [(name, s.labels, s.value) for name in got for s in got[name]]
    assert comparable(ours) == comparable(expected)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.text(alphabet='m_{}="\\ \n\t#0123456789.+-eEInfNaTYPE,le', max_size=300).map(str.encode),
    ),
    openmetrics=st.booleans(),
)
def test_any_body_reads_or_fails_cleanly(body: bytes, openmetrics: bool) -> None:
    reader = PageReader(["m", "m_bucket", "m_total"])
    content_type = "application/openmetrics-text" if openmetrics else "text/plain"
    try:
        got = read_page(reader, body, content_type)
    except ExpositionError as exc:
        assert "\n" not in str(exc)
        return
    assert set(got) <= {"m", "m_bucket", "m_total"}


# ---------------------------------------------------------------------------
# The probe against a realistic page, scraped twice


async def test_realistic_page_scraped_twice(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    probe = make_probe(session, target_server.url("/metrics"), **SHOP)
    serve(target_server, "exposition_scrape1.prom")
    first = await scrape(probe)
    assert first.up is True, first.error
    assert first.error is None
    # The first scrape has no rate yet: absent, never 0, never UNKNOWN.
    assert "error_rate_percent" not in first.metrics
    assert first.no_data == {"error_rate_percent", "latency_p95_seconds", "latency_p99_seconds"}
    assert first.missing == frozenset()
    assert first.metrics["queue_depth"] == 10.0  # high 3 + default 7; low left out
    assert 0 < first.metrics["latency_seconds"] < 5
    assert target_server.last_request.headers["Accept"] == ACCEPT

    serve(target_server, "exposition_scrape2.prom")
    second = await scrape(probe, now=1030.0)
    assert second.up is True, second.error
    assert second.no_data == frozenset()
    # Requests off /health: GET 200 +800, GET 500 +15, POST 201 +100, POST 503 +0,
    # the "quoted" search route +75, and DELETE 502 new with 10 (counted from 0): 1000.
    # Errors (5xx) among them: 15 + 0 + 10 = 25. 100 * 25 / 1000 = 2.5 %.
    # (Counting /health too: +3,600 and +497 more, 100 * 522 / 5,097 = 10.2 %.)
    assert second.metrics["error_rate_percent"] == pytest.approx(2.5)
    # Bucket increases, GET + POST (/health left out), cumulative by le:
    #   0.05: 150+50=200  0.1: 350+150=500  0.25: 550+250=800
    #   0.5:  640+290=930  1: 680+300=980  +Inf: 700+300=1000
    # p95: rank 950 in (0.5, 1], 930 below, 50 in it → 0.5 + 0.5 * 20/50 = 0.7.
    # p99: rank 990 > 980 → in +Inf → the highest finite bound, 1.
    assert second.metrics["latency_p95_seconds"] == pytest.approx(0.7)
    assert second.metrics["latency_p99_seconds"] == 1.0
    assert second.metrics["queue_depth"] == 12.0


async def test_summary_quantiles_come_as_exposed(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    serve(target_server, "exposition_scrape1.prom")
    probe = make_probe(
        session,
        target_server.url("/metrics"),
        latency_histogram="rpc_duration_seconds",
        quantiles=[0.5, 0.95, 0.99],
    )
    observation = await scrape(probe)
    assert observation.up is True
    # A summary's quantiles need no previous scrape; the worst service counts:
    # p50 max(0.012, 0.02), p99 max(0.31, 0.42).
    assert observation.metrics["latency_p50_seconds"] == 0.02
    assert observation.metrics["latency_p99_seconds"] == 0.42
    # The summary is on the page: a quantile it does not expose is absent, with the reason.
    assert observation.missing == frozenset()
    assert observation.no_data == {"latency_p95_seconds"}
    assert observation.reasons == {
        "latency_p95_seconds": "summary rpc_duration_seconds has no quantile 0.95"
    }


async def test_summary_nan_quantile_is_no_data(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = 's{quantile="0.99"} NaN\ns_sum 0\ns_count 0\n'
    probe = make_probe(session, target_server.url(), latency_histogram="s", quantiles=[0.99])
    observation = await scrape(probe)
    assert observation.up is True
    assert observation.no_data == {"latency_p99_seconds"}
    assert "latency_p99_seconds" not in observation.metrics


async def test_openmetrics_page_with_a_counter_reset(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    probe = make_probe(
        session,
        target_server.url("/metrics"),
        requests="http_requests_total",
        errors='http_requests_total{code=~"5.."}',
        latency_histogram="request_latency_seconds",
        quantiles=[0.5, 0.95],
        gauges={"queue": "queue_size"},
    )
    serve(target_server, "openmetrics_scrape1.txt", OPENMETRICS)
    first = await scrape(probe)
    assert first.up is True, first.error
    assert first.metrics["queue"] == 3.0
    assert "error_rate_percent" in first.no_data

    serve(target_server, "openmetrics_scrape2.txt", OPENMETRICS)
    second = await scrape(probe)
    assert second.up is True, second.error
    # code 200 went 1000 → 380: the service restarted, 380 since. code 500: 20 → 40, +20.
    # 100 * 20 / (380 + 20) = 5 %.
    assert second.metrics["error_rate_percent"] == pytest.approx(5.0)
    # Bucket increases: 0.1: 80, 0.5: 100, +Inf: 100.
    # p50: rank 50 ≤ 80, first bucket → 0.1 * 50/80 = 0.0625.
    # p95: rank 95 in (0.1, 0.5], 80 below, 20 in it → 0.1 + 0.4 * 15/20 = 0.4.
    assert second.metrics["latency_p50_seconds"] == pytest.approx(0.0625)
    assert second.metrics["latency_p95_seconds"] == pytest.approx(0.4)
    assert second.metrics["queue"] == 5.0


async def test_openmetrics_page_cut_short_fails(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    text = page("openmetrics_scrape1.txt")
    target_server.body = text[: text.index("# TYPE queue_size")]
    target_server.content_type = OPENMETRICS
    probe = make_probe(session, target_server.url(), gauges={"queue": "queue_size"})
    assert_down(await scrape(probe), 'invalid exposition: no "# EOF" at the end')


async def test_no_requests_in_the_interval_gives_no_rate(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    serve(target_server, "exposition_scrape1.prom")
    probe = make_probe(session, target_server.url(), **SHOP)
    await scrape(probe)
    same = await scrape(probe)  # nothing moved: Δrequests = 0, no observations either
    assert same.up is True
    assert same.no_data == {"error_rate_percent", "latency_p95_seconds", "latency_p99_seconds"}
    verdicts = {v.metric: v for v in evaluate(same, rules())}
    assert verdicts["error_rate_percent"].absent
    assert verdicts["error_rate_percent"].note == "no requests since the last scrape"


async def test_requests_matching_no_series_yet_is_absent_and_a_wrong_name_unknown(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    serve(target_server, "exposition_scrape1.prom")
    probe = make_probe(
        session,
        target_server.url(),
        requests='http_requests_total{route="/nowhere"}',
        errors='http_requests_total{route="/nowhere",status=~"5.."}',
    )
    observation = await scrape(probe)
    assert observation.up is True
    # The name is on the page: the label set is created at its first request.
    assert observation.missing == frozenset()
    assert observation.no_data == {"error_rate_percent"}
    assert observation.reasons == {
        "error_rate_percent": 'no series of http_requests_total{route="/nowhere"} yet'
    }
    assert observation.error is None
    verdicts = {v.metric: v for v in evaluate(observation, rules())}
    assert verdicts["error_rate_percent"].absent

    typo = make_probe(session, target_server.url(), requests="http_requestz_total", errors="e")
    observation = await scrape(typo)
    assert observation.missing == {"error_rate_percent"}
    assert observation.error == "error_rate_percent: no metric http_requestz_total on the page"
    verdicts = {v.metric: v for v in evaluate(observation, rules())}
    assert verdicts["error_rate_percent"].severity is Severity.UNKNOWN
    assert verdicts["error_rate_percent"].note == "no metric http_requestz_total on the page"


async def test_errors_matching_nothing_count_as_zero(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = 'reqs{code="200"} 10\n'
    probe = make_probe(session, target_server.url(), requests="reqs", errors='reqs{code=~"5.."}')
    await scrape(probe)
    target_server.body = 'reqs{code="200"} 30\n'
    observation = await scrape(probe)
    assert observation.metrics["error_rate_percent"] == 0.0


async def test_histogram_missing_or_without_inf_is_unknown_with_a_reason(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = 'h_bucket{le="0.1"} 3\nh_bucket{le="1"} 5\nh_count 5\n'
    probe = make_probe(session, target_server.url(), latency_histogram="h")
    observation = await scrape(probe)
    assert observation.up is True
    assert observation.missing == {"latency_p95_seconds", "latency_p99_seconds"}
    assert observation.error == (
        "latency_p95_seconds, latency_p99_seconds: histogram h has no +Inf bucket"
    )
    other = make_probe(session, target_server.url(), latency_histogram="absent_seconds")
    observation = await scrape(other)
    assert observation.missing == {"latency_p95_seconds", "latency_p99_seconds"}
    assert observation.error is not None
    assert "no histogram or summary absent_seconds" in observation.error


async def test_gauges_sum_and_report_what_they_cannot_find(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = 'q{n="a"} 2\nq{n="b"} 3.5\nq{n="c"} NaN\nbad NaN\n'
    probe = make_probe(
        session, target_server.url(), gauges={"total": "q", "nan": "bad", "none": "nothing"}
    )
    observation = await scrape(probe)
    assert observation.up is True
    # As PromQL's sum: a NaN member makes the sum NaN, which a threshold judges UNKNOWN.
    assert math.isnan(observation.metrics["total"])
    assert math.isnan(observation.metrics["nan"])
    assert observation.no_data == frozenset()
    assert observation.missing == {"none"}
    assert observation.error == "none: no metric nothing on the page"
    spec = ThresholdSpec(warning=10)
    verdicts = {
        v.metric: v
        for v in evaluate(
            observation, {"up": rules()["up"], "total": Rule.from_spec("total", spec)}
        )
    }
    assert verdicts["total"].severity is Severity.UNKNOWN
    target_server.body = 'q{n="a"} 2\nq{n="b"} 3.5\n'
    assert (await scrape(probe)).metrics["total"] == 5.5


async def test_nan_and_infinite_counters_are_skipped(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    keys = {"requests": "r", "errors": 'r{code="500"}'}
    probe = make_probe(session, target_server.url(), **keys)
    target_server.body = 'r{code="200"} 100\nr{code="500"} 10\nr{code="999"} 7\n'
    await scrape(probe)
    target_server.body = 'r{code="200"} 190\nr{code="500"} NaN\nr{code="999"} +Inf\n'
    broken = await scrape(probe)
    # Only code 200 counts: +90 requests, the 500s are unreadable → 0 errors.
    assert broken.metrics["error_rate_percent"] == 0.0
    target_server.body = 'r{code="200"} 280\nr{code="500"} 20\nr{code="999"} 9\n'
    healed = await scrape(probe)
    # The skipped series kept their last values (500: 10, 999: 7), so they do not
    # count from 0 now: requests +90 +10 +2 = 102, errors +10 → 100 * 10/102.
    assert healed.metrics["error_rate_percent"] == pytest.approx(1000 / 102)


async def test_duplicate_series_count_once(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    probe = make_probe(session, target_server.url(), requests="r", errors='r{code="500"}')
    target_server.body = 'r{code="200"} 100\nr{code="500"} 0\n'
    await scrape(probe)
    target_server.body = 'r{code="200"} 150\nr{code="500"} 50\nr{code="500"} 50\n'
    observation = await scrape(probe)
    # The first of the two 500 lines counts: +50 of +100 → 50 %, not 100 * 100/150.
    assert observation.metrics["error_rate_percent"] == 50.0


# ---------------------------------------------------------------------------
# Faults: never an exception, one short line


async def test_a_huge_page_fails_at_the_cap(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    line = b'http_requests_total{method="GET",route="/a/long/route/name"} 12345\n'
    target_server.body = line * (20 * MiB // len(line))
    probe = make_probe(session, target_server.url(), requests="http_requests_total", errors="x")
    assert_down(await scrape(probe), "body larger than 1048576 bytes")


async def test_an_endless_page_fails_at_the_cap(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = b"m 1\n" * 4096
    target_server.endless = True
    probe = make_probe(session, target_server.url(), gauges={"m": "m"}, max_body="64KiB")
    assert_down(await scrape(probe), "body larger than 65536 bytes")


async def test_a_truncated_page_fails(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    text = page("exposition_scrape1.prom")
    target_server.body = text[: text.index('route="/api/items",le="0.5"') + 10]
    probe = make_probe(session, target_server.url(), **SHOP)
    # Cut inside the 0.5 bucket of GET /api/items, line 27 of the file.
    assert_down(await scrape(probe), "invalid exposition: line 27: cannot parse")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html><body>Welcome to nginx!</body></html>", "invalid exposition: line 1"),
        (b"\x00\xff\xfe garbage", "invalid exposition: not UTF-8 text (byte 1)"),
    ],
)
async def test_garbage_fails(
    session: aiohttp.ClientSession, target_server: TargetServer, body: bytes, error: str
) -> None:
    target_server.body = body
    probe = make_probe(session, target_server.url(), gauges={"m": "m"})
    observation = await scrape(probe)
    assert_down(observation, error)
    assert observation.metrics["latency_seconds"] > 0


async def test_http_errors_timeouts_and_refusals_fail(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.status = 503
    probe = make_probe(session, target_server.url(), gauges={"m": "m"})
    assert_down(await scrape(probe), "HTTP 503 (expected 2xx)")
    target_server.status = 200
    target_server.delay = 1.0
    slow = make_probe(session, target_server.url(), probe_timeout=0.2, gauges={"m": "m"})
    assert_down(await scrape(slow), "timeout after 0.2s")
    refused = make_probe(session, f"http://127.0.0.1:{closed_port()}/metrics", gauges={"m": "m"})
    assert_down(await scrape(refused), "connection refused")


# ---------------------------------------------------------------------------
# State across runs


async def test_state_carries_the_counters_to_the_next_run(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    serve(target_server, "exposition_scrape1.prom")
    first_run = make_probe(session, target_server.url(), **SHOP)
    assert first_run.saved_state() is None  # nothing seen yet
    await scrape(first_run)
    saved = json.loads(json.dumps(first_run.saved_state()))
    # Only the series the selectors match: 5 requests, 2 of them errors, 12 buckets;
    # nothing of /health, nothing of the gauges.
    counters = saved["counters"]
    assert sorted(len(series) for series in counters.values()) == [2, 5, 12]
    assert not any("/health" in key for series in counters.values() for key in series)

    second_run = make_probe(session, target_server.url(), **SHOP)
    second_run.restore_state(saved)
    serve(target_server, "exposition_scrape2.prom")
    observation = await scrape(second_run)
    assert observation.metrics["error_rate_percent"] == pytest.approx(2.5)
    assert observation.metrics["latency_p95_seconds"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"version": 2, "counters": {}},
        {"version": 1, "counters": []},
        {"version": 1, "counters": {"r": [1, 2]}},
        {"version": 1, "counters": {"r": {"r": "12"}}},
        {"version": 1, "counters": {"r": {"r": True}}},
        {"version": 1, "counters": {"r": {"r": float("nan")}}},
    ],
)
async def test_a_state_that_does_not_fit_is_ignored(
    session: aiohttp.ClientSession, target_server: TargetServer, state: dict[str, Any]
) -> None:
    target_server.body = "r 10\n"
    probe = make_probe(session, target_server.url(), requests="r", errors="e")
    probe.restore_state(state)
    observation = await scrape(probe)
    assert observation.up is True
    assert observation.no_data == {"error_rate_percent"}  # a first scrape, as without state


async def test_a_changed_selector_starts_its_rate_afresh(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = 'r{code="500",kind="a"} 10\nr{code="200",kind="a"} 100\n'
    before = make_probe(session, target_server.url(), requests="r", errors='r{code="500"}')
    await scrape(before)
    state = before.saved_state()
    assert state is not None
    # The operator changes the errors selector: its series were never seen under it, and
    # counting them from 0 would report 10 old errors as new. It waits a scrape instead.
    after = make_probe(session, target_server.url(), requests="r", errors='r{code=~"5.."}')
    after.restore_state(state)
    observation = await scrape(after)
    assert observation.no_data == {"error_rate_percent"}


# ---------------------------------------------------------------------------
# Large pages: only what the selectors match is kept, off the event loop


def test_reader_keeps_only_the_series_a_selector_matches() -> None:
    keep = {"m": [parse_selector('m{a="1"}'), parse_selector('m{b="x"}')]}
    reader = PageReader(["m"], keep=keep)
    text = 'm{a="1"} 1\nm{a="2"} 2\nm{a="3",b="x"} 3\nm{a="4"} 4\n'
    for _ in range(2):  # the second time from what the reader remembers of each line
        got = reader.read(text, openmetrics=False)
        assert [s.value for s in got["m"]] == [1.0, 3.0]
        assert got.mentioned == {"m"}


def tenant_page(tenants: int, count: int) -> str:
    """The shop's requests by route, among ``tenants`` series of the same counter by tenant."""
    lines = ["# TYPE http_requests_total counter"]
    lines += [f'http_requests_total{{route="/api",status="{s}"}} {count}' for s in (200, 500)]
    lines += [f'http_requests_total{{tenant="t{i}"}} {count + i}' for i in range(tenants)]
    return "\n".join(lines) + "\n"


async def test_state_holds_only_the_selected_series_of_a_big_page(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = tenant_page(20_000, 10)
    probe = make_probe(
        session,
        target_server.url(),
        max_body="16MiB",
        requests='http_requests_total{route="/api"}',
        errors='http_requests_total{route="/api",status="500"}',
    )
    await scrape(probe)
    target_server.body = tenant_page(20_000, 30)
    observation = await scrape(probe)
    assert observation.metrics["error_rate_percent"] == 50.0
    state = probe.saved_state()
    assert state is not None
    keys = sorted(key for series in state["counters"].values() for key in series)
    assert keys == [
        'http_requests_total{route="/api",status="200"}',
        'http_requests_total{route="/api",status="500"}',
        'http_requests_total{route="/api",status="500"}',
    ]


def count_probe_state_writes(path: Path) -> Callable[[], int]:
    """Installs triggers in the real state file that count every row written to probe_state."""
    Database(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        "CREATE TABLE writes (n INTEGER NOT NULL); INSERT INTO writes VALUES (0);"
        "CREATE TRIGGER on_insert AFTER INSERT ON probe_state "
        "BEGIN UPDATE writes SET n = n + 1; END;"
        "CREATE TRIGGER on_update AFTER UPDATE ON probe_state "
        "BEGIN UPDATE writes SET n = n + 1; END;"
    )
    db.close()

    def writes() -> int:
        with contextlib.closing(sqlite3.connect(path)) as reader:
            return int(reader.execute("SELECT n FROM writes").fetchone()[0])

    return writes


async def test_probe_state_is_written_only_when_it_changed(
    tmp_path: Path, target_server: TargetServer
) -> None:
    state = tmp_path / "state.db"
    writes = count_probe_state_writes(state)
    path = tmp_path / "vigild.toml"
    path.write_text(
        f'[daemon]\nlisten = "127.0.0.1:{closed_port()}"\nstate_path = {json.dumps(str(state))}\n'
        '[[targets]]\nname = "shop"\ntype = "prometheus"\n'
        f'url = "{target_server.url("/metrics")}"\n'
        "requests = 'r'\nerrors = 'r{code=\"500\"}'\n",
        encoding="utf-8",
    )
    target_server.body = 'r{code="200"} 10\n'
    runtime = await Runtime(load(path)).open()
    try:
        seen = []
        for body in ['r{code="200"} 10\n'] * 3 + ['r{code="200"} 11\n'] * 2:
            target_server.body = body
            await runtime.run_cycle()
            seen.append(writes())
    finally:
        await runtime.close(drain=0.0)
    # Written at the first scrape and when a counter moved; not while nothing did.
    assert seen == [1, 1, 1, 2, 2]


async def test_a_large_page_is_read_off_the_event_loop(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    # A big page of which a few series are selected, as a real exporter's page is: the
    # reading is the work; what the loop does with the selected series afterwards is not.
    body = "".join(f'other{{code="200",tenant="t{i}"}} {i}\n' for i in range(300_000))
    body += "".join(f'r{{code="200",tenant="t{i}"}} {i}\n' for i in range(100))
    assert len(body) > INLINE_MAX
    started = time.perf_counter()
    read_page(PageReader(["r"]), body.encode(), TEXT)
    reading = time.perf_counter() - started

    target_server.body = body
    probe = make_probe(session, target_server.url(), max_body="16MiB", gauges={"total": "r"})
    lag = 0.0
    sampling = True

    async def sample() -> None:
        nonlocal lag
        while sampling:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lag = max(lag, time.perf_counter() - before - 0.001)

    sampler = asyncio.create_task(sample())
    try:
        observation = await scrape(probe)
    finally:
        sampling = False
        await sampler
    assert observation.metrics["total"] == sum(range(100))
    # Read on the loop, the loop would stall for all of `reading`; in a thread the loop
    # gets the GIL back between the reader's bounded regex calls.
    assert lag < reading / 4, (lag, reading)


# ---------------------------------------------------------------------------
# Units, summaries, quantile 1 (check-config --probe: tests/system)


def test_a_latency_histogram_in_bytes_is_a_config_error(tmp_path: Path) -> None:
    path = write_target(
        tmp_path, "http://127.0.0.1/metrics", latency_histogram='"http_response_size_bytes"'
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert any(
        "latency_histogram http_response_size_bytes is in bytes, not seconds" in p
        for p in caught.value.problems
    ), caught.value.problems


async def test_a_summary_without_quantiles_says_so_and_quantile_1_is_read(
    session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = "job_seconds_sum 12\njob_seconds_count 4\n"
    probe = make_probe(session, target_server.url(), latency_histogram="job_seconds")
    observation = await scrape(probe)
    assert observation.missing == frozenset()
    assert observation.reasons["latency_p95_seconds"] == (
        "summary job_seconds has no quantiles (made without objectives): a histogram gives them"
    )
    target_server.body = 'job_seconds{quantile="1"} 3.5\njob_seconds_count 4\n'
    maximum = make_probe(
        session, target_server.url(), latency_histogram="job_seconds", quantiles=[1.0]
    )
    assert (await scrape(maximum)).metrics["latency_p100_seconds"] == 3.5
