"""The dashboard's SVG charts: well-formed, escaped, accessible, right marks, stable bytes."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.middleware.charts import PALETTE, Series, bar_chart, line_chart, share_bar

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x & y")</script>'
DAYS = [(dt.date(2026, 1, 1) + dt.timedelta(days=d)).isoformat() for d in range(365)]
WEEKS = ["2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48"]
NNBSP = "\u202f"


def parse(svg: str) -> ET.Element:
    assert svg.startswith("<svg ") and svg.endswith("</svg>")  # an element, no declaration
    return ET.fromstring(svg)  # noqa: S314 -- our own output, not untrusted XML


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def shown_text(element: ET.Element) -> str:
    """The text a <text> draws: its own, not that of a <title> tooltip inside it."""
    return (element.text or "") + "".join(child.tail or "" for child in element)


def axis_texts(root: ET.Element, axis: str) -> list[str]:
    (group,) = by_class(root, axis)
    return [shown_text(t) for t in group.iter(f"{SVG}text")]


def tooltip(element: ET.Element) -> str:
    title = element.find(f"{SVG}title")
    assert title is not None
    return title.text or ""


def y_ticks(root: ET.Element) -> list[float]:
    return [float(t.replace(NNBSP, "").rstrip(" %")) for t in axis_texts(root, "cg-y")]


def tick_y(root: ET.Element, text: str) -> float:
    (group,) = by_class(root, "cg-y")
    return next(float(t.get("y", "")) for t in group.iter(f"{SVG}text") if t.text == text)


def line_runs(d: str) -> list[list[tuple[float, float]]]:
    """Absolute points of each run in a line's path data (M x y l dx dy dx dy ...)."""
    runs = []
    for start, steps in re.findall(r"M([^Ml]+)(?:l([^M]*))?", d):
        x, y = (float(v) for v in start.split())
        points = [(x, y)]
        deltas = [float(v) for v in steps.split()]
        for dx, dy in zip(deltas[::2], deltas[1::2], strict=True):
            x, y = x + dx, y + dy
            points.append((x, y))
        runs.append(points)
    return runs


def week_series(*rows: Sequence[float | None]) -> list[Series]:
    return [Series(f"service {i}", row) for i, row in enumerate(rows)]


def seasonal(count: int, series: int) -> list[Series]:
    return [
        Series(f"service {k}", [0.5 + 0.4 * math.sin(d / 20 + k) for d in range(count)])
        for k in range(series)
    ]


Chart = Callable[[], str]

CHARTS: dict[str, Chart] = {
    "line-normal": lambda: line_chart(
        WEEKS, week_series([0.1, 0.2, 0.3, 0.4, 0.5]), title="t", description="d"
    ),
    "line-empty": lambda: line_chart([], [], title="t", description="d"),
    "line-labels-no-series": lambda: line_chart(WEEKS, [], title="t", description="d"),
    "line-all-none": lambda: line_chart(
        WEEKS, week_series([None] * 5, [None] * 5), title="t", description="d"
    ),
    "line-single-point": lambda: line_chart(
        ["2026-11-03"], week_series([0.62]), title="t", description="d"
    ),
    "line-many-points": lambda: line_chart(DAYS, seasonal(365, 8), title="t", description="d"),
    "line-gaps": lambda: line_chart(
        WEEKS, week_series([0.1, None, 0.3, None, 0.5]), title="t", description="d"
    ),
    "line-counts-negative": lambda: line_chart(
        WEEKS, week_series([-3, 4, 0, 12.5, 7]), title="t", description="d", percent=False
    ),
    "bar-normal": lambda: bar_chart(
        WEEKS, week_series([3, 4, 5, 6, 7], [1, 0, 2, None, 1]), title="t", description="d"
    ),
    "bar-empty": lambda: bar_chart([], [], title="t", description="d"),
    "bar-single": lambda: bar_chart(["2026-11-03"], week_series([4]), title="t", description="d"),
    "bar-many": lambda: bar_chart(
        DAYS,
        week_series([d % 7 for d in range(365)], [d % 3 for d in range(365)]),
        title="t",
        description="d",
    ),
    "bar-gaps": lambda: bar_chart(
        WEEKS, week_series([3, None, 5, None, 7]), title="t", description="d"
    ),
    "bar-zero-totals": lambda: bar_chart(
        WEEKS, week_series([0] * 5, [0] * 5), title="t", description="d"
    ),
    "share-normal": lambda: share_bar([("a", 5), ("b", 3), ("c", 2)], title="t", description="d"),
    "share-empty": lambda: share_bar([], title="t", description="d"),
    "share-zero-total": lambda: share_bar([("a", 0), ("b", 0)], title="t", description="d"),
}


@pytest.mark.parametrize("chart", CHARTS.values(), ids=CHARTS.keys())
def test_output_is_an_accessible_svg_element(chart: Chart) -> None:
    svg = chart()
    root = parse(svg)
    assert svg.isascii()
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("width") == "100%"
    assert root.get("font-family") == "system-ui, sans-serif"
    assert re.fullmatch(r"0 0 \d+ [\d.]+", root.get("viewBox", ""))
    title_id, desc_id = root.get("aria-labelledby", "").split()
    title, desc = root[0], root[1]
    assert (title.tag, title.get("id"), title.text) == (f"{SVG}title", title_id, "t")
    assert (desc.tag, desc.get("id")) == (f"{SVG}desc", desc_id)
    assert (desc.text or "").startswith("d. ")
    assert "style" not in svg  # presentation attributes only: a strict CSP renders it


@pytest.mark.parametrize(
    "chart",
    [
        lambda t: line_chart(WEEKS, week_series([0.5] * 5), title=t, description="d"),
        lambda t: line_chart(WEEKS, week_series([0.5] * 5), title="t", description=t),
        lambda t: line_chart([t] * 5, week_series([0.5] * 5), title="t", description="d"),
        lambda t: line_chart(WEEKS, [Series(t, [0.5] * 5)], title="t", description="d"),
        lambda t: line_chart([], [], title="t", description="d", no_data=t),
        lambda t: bar_chart(WEEKS, week_series([1] * 5), title=t, description="d"),
        lambda t: bar_chart(WEEKS, week_series([1] * 5), title="t", description=t),
        lambda t: bar_chart([t] * 5, week_series([1] * 5), title="t", description="d"),
        lambda t: bar_chart(WEEKS, [Series(t, [1] * 5)], title="t", description="d"),
        lambda t: bar_chart(WEEKS, [], title="t", description="d", no_data=t),
        lambda t: share_bar([("a", 1)], title=t, description="d"),
        lambda t: share_bar([("a", 1)], title="t", description=t),
        lambda t: share_bar([(t, 1), ("b", 2)], title="t", description="d"),
        lambda t: share_bar([], title="t", description="d", no_data=t),
    ],
    ids=[
        "line-title",
        "line-description",
        "line-labels",
        "line-series-name",
        "line-no-data",
        "bar-title",
        "bar-description",
        "bar-labels",
        "bar-series-name",
        "bar-no-data",
        "share-title",
        "share-description",
        "share-part-name",
        "share-no-data",
    ],
)
def test_escapes_every_text_input(chart: Callable[[str], str]) -> None:
    svg = chart(HOSTILE)
    assert "<script" not in svg.lower()
    root = parse(svg)
    # Escaped, not dropped: the text comes back whole where a reader would see it.
    assert HOSTILE in "".join(root.itertext())


def test_characters_xml_forbids_are_replaced() -> None:
    odd = "a\x00b\x1bc\ufffed\ud800e\nf"
    root = parse(line_chart([odd, "x"], [Series(odd, [0.5, 0.6])], title=odd, description=odd))
    assert root[0].text == "a\ufffdb\ufffdc\ufffdd\ufffde f"


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(max_size=40), min_size=1, max_size=6),
    title=st.text(max_size=40),
    values=st.lists(st.none() | st.floats(-2, 2), min_size=6, max_size=6),
)
def test_any_text_gives_well_formed_svg(
    texts: list[str], title: str, values: list[float | None]
) -> None:
    labels = texts
    series = [Series(t, values[: len(labels)]) for t in texts]
    parse(line_chart(labels, series, title=title, description=title))
    counts = [
        Series(t, [abs(v) if v is not None else None for v in s.values])
        for t, s in zip(texts, series, strict=True)
    ]
    parse(bar_chart(labels, counts, title=title, description=title))
    parse(share_bar([(t, 1.0) for t in texts], title=title, description=title))


@pytest.mark.parametrize(
    ("rows", "lines", "markers", "points_per_line"),
    [
        pytest.param([[0.1, 0.2, 0.3, 0.4, 0.5]] * 3, 3, 15, [[5]] * 3, id="three-full-series"),
        pytest.param([[0.1, None, 0.3, 0.4, None]], 1, 3, [[2]], id="gap-leaves-isolated-point"),
        pytest.param([[0.1, None, 0.3, None, 0.5]], 0, 3, [], id="only-isolated-points"),
        pytest.param([[0.1, 0.2, None, 0.4, 0.5]], 1, 4, [[2, 2]], id="gap-splits-the-line"),
        pytest.param([[None] * 5, [0.5] * 5], 1, 5, [[5]], id="series-without-data"),
    ],
)
def test_line_chart_draws_one_path_per_series_and_a_marker_per_point(
    rows: list[list[float | None]], lines: int, markers: int, points_per_line: list[list[int]]
) -> None:
    root = parse(line_chart(WEEKS, week_series(*rows), title="t", description="d"))
    paths = by_class(root, "cg-line")
    assert len(paths) == lines
    assert len(by_class(root, "cg-marker")) == markers
    assert [[len(run) for run in line_runs(p.get("d", ""))] for p in paths] == points_per_line


def test_single_label_draws_the_point_markers() -> None:
    root = parse(
        line_chart(
            ["2026-11-03"],
            [Series("etracker", [0.62]), Series("YouTube", [0.48])],
            title="t",
            description="d",
        )
    )
    assert by_class(root, "cg-line") == []
    assert [tooltip(m) for m in by_class(root, "cg-marker")] == [
        "etracker, 2026-11-03: 62 %",
        "YouTube, 2026-11-03: 48 %",
    ]
    assert axis_texts(root, "cg-x") == ["2026-11-03"]
    assert "Latest (2026-11-03): etracker 62 %, YouTube 48 %." in (root[1].text or "")


def test_many_points_keep_every_point_but_few_markers() -> None:
    svg = line_chart(DAYS, seasonal(365, 8), title="Opt-in rate", description="Per day")
    root = parse(svg)
    assert len(svg.encode()) < 60_000
    paths = by_class(root, "cg-line")
    assert len(paths) == 8
    top, bottom = tick_y(root, "100 %"), tick_y(root, "0 %")
    for path, series in zip(paths, seasonal(365, 8), strict=True):
        (run,) = line_runs(path.get("d", ""))
        assert len(run) == 365
        # Relative steps from rounded points: no drift, even at the far end.
        for (_, y), value in zip(run, series.values, strict=True):
            assert value is not None
            assert y == pytest.approx(bottom - value * (bottom - top), abs=0.11)
    assert 8 * 2 <= len(by_class(root, "cg-marker")) <= 8 * 14


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(-0.5, "0 %", id="below-zero"),
        pytest.param(1.5, "100 %", id="above-one"),
        pytest.param(0.5, "50 %", id="inside"),
    ],
)
def test_percent_values_are_clamped(value: float, shown: str) -> None:
    root = parse(line_chart(["a"], [Series("s", [value])], title="t", description="d"))
    (marker,) = by_class(root, "cg-marker")
    assert tooltip(marker) == f"s, a: {shown}"
    # The circle's path starts at its left edge, on the centre line.
    centre_y = float(marker.get("d", "").split()[1].split("a")[0])
    assert centre_y == tick_y(root, shown)


def test_without_percent_values_are_not_clamped() -> None:
    root = parse(
        line_chart(["a", "b"], week_series([1.5, -0.25]), title="t", description="d", percent=False)
    )
    ticks = y_ticks(root)
    assert ticks[0] <= -0.25 and ticks[-1] >= 1.5
    assert [tooltip(m) for m in by_class(root, "cg-marker")] == [
        "service 0, a: 1.5",
        "service 0, b: -0.25",
    ]


def is_nice(step: float) -> bool:
    exponent = math.floor(math.log10(step))
    return any(math.isclose(step, m * 10.0**exponent) for m in (1, 2, 5))


@pytest.mark.parametrize(
    "highest",
    [0, 1, 3, 7, 10, 11, 99, 101, 1801, 12345, 1_000_000],
    ids=lambda v: f"max-{v}",
)
def test_bar_chart_y_ticks_are_nice_and_cover_the_highest_bar(highest: int) -> None:
    values = [0, highest // 3, highest // 2, highest - highest // 2, 0]
    root = parse(
        bar_chart(
            WEEKS,
            week_series(values, [0, 0, highest - highest // 2, 0, 0]),
            title="t",
            description="d",
        )
    )
    ticks = y_ticks(root)
    steps = {b - a for a, b in itertools.pairwise(ticks)}
    assert ticks[0] == 0
    assert len(steps) == 1
    (step,) = steps
    assert step >= 1 and step == int(step)
    assert is_nice(step)
    assert ticks[-1] >= highest > ticks[-2] or (highest == 0 and ticks == [0, 1])
    assert len(ticks) <= 7


def test_line_chart_counts_get_nice_ticks_covering_negative_values() -> None:
    root = parse(
        line_chart(
            WEEKS, week_series([-3, 4, 0, 12.5, 7]), title="t", description="d", percent=False
        )
    )
    ticks = y_ticks(root)
    assert ticks[0] <= -3 < ticks[1]
    assert ticks[-2] < 12.5 <= ticks[-1]
    assert is_nice(ticks[1] - ticks[0])


def test_large_numbers_use_a_narrow_no_break_space() -> None:
    root = parse(bar_chart(["a"], [Series("s", [12345])], title="t", description="d"))
    assert axis_texts(root, "cg-y") == ["0", f"5{NNBSP}000", f"10{NNBSP}000", f"15{NNBSP}000"]
    assert [shown_text(t) for t in by_class(root, "cg-total")] == [f"12{NNBSP}345"]


@pytest.mark.parametrize(
    ("labels", "fewest"),
    [
        pytest.param(DAYS, 8, id="365-days"),
        pytest.param([str(d) for d in range(1, 366)], 12, id="365-numbers"),
        # Truncated to 16 characters, these take more room than dates.
        pytest.param([f"a rather long label number {i}" for i in range(100)], 5, id="long-names"),
    ],
)
@pytest.mark.parametrize("kind", ["line", "bar"])
def test_many_labels_are_thinned_keeping_first_and_last(
    labels: list[str], fewest: int, kind: str
) -> None:
    series = [Series("s", [0.5] * len(labels))]
    chart = line_chart if kind == "line" else bar_chart
    root = parse(chart(labels, series, title="t", description="d"))
    (group,) = by_class(root, "cg-x")
    texts = list(group.iter(f"{SVG}text"))
    assert fewest <= len(texts) <= 12
    full = [tooltip(t) if t.find(f"{SVG}title") is not None else shown_text(t) for t in texts]
    assert full[0] == labels[0] and full[-1] == labels[-1]
    positions = [labels.index(f) for f in full]
    assert positions == sorted(positions)
    xs = [float(t.get("x", "")) for t in texts]
    assert all(b - a >= 30 for a, b in itertools.pairwise(xs))


def test_few_labels_are_all_shown() -> None:
    root = parse(line_chart(WEEKS, week_series([0.5] * 5), title="t", description="d"))
    assert axis_texts(root, "cg-x") == WEEKS


def test_long_labels_and_names_are_truncated_with_the_full_text_as_tooltip() -> None:
    label = "Consent decisions on the first of November"
    name = "A service with a remarkably long display name"
    root = parse(line_chart([label, "b"], [Series(name, [0.1, 0.2])], title="t", description="d"))
    (group,) = by_class(root, "cg-x")
    first = next(group.iter(f"{SVG}text"))
    assert shown_text(first).endswith("\u2026") and len(shown_text(first)) <= 16
    assert label.startswith(shown_text(first)[:-1])
    assert tooltip(first) == label
    (legend,) = by_class(root, "cg-legend")
    (entry,) = legend.iter(f"{SVG}text")
    assert shown_text(entry).endswith("\u2026") and tooltip(entry) == name


def test_stacked_bars_have_one_rect_per_count_in_series_order() -> None:
    svg = bar_chart(
        WEEKS,
        [Series("accept-all", [3, 4, 0, 6, 7]), Series("reject-all", [1, None, 2, 0, 5])],
        title="Decisions per day",
        description="By action",
    )
    root = parse(svg)
    first, second = by_class(root, "cg-series")
    assert [tooltip(r) for r in first] == [
        "accept-all, 2026-W44: 3",
        "accept-all, 2026-W45: 4",
        "accept-all, 2026-W47: 6",
        "accept-all, 2026-W48: 7",
    ]
    assert [tooltip(r) for r in second] == [
        "reject-all, 2026-W44: 1",
        "reject-all, 2026-W46: 2",
        "reject-all, 2026-W48: 5",
    ]
    # Stacked: the second series sits right on top of the first.
    bottom_of_second = float(second[0].get("y", "")) + float(second[0].get("height", ""))
    assert bottom_of_second == float(first[0].get("y", ""))
    assert [shown_text(t) for t in by_class(root, "cg-total")] == ["4", "4", "2", "6", "12"]
    (legend,) = by_class(root, "cg-legend")
    assert [shown_text(t) for t in legend.iter(f"{SVG}text")] == [
        "accept-all (20)",
        "reject-all (8)",
    ]
    assert "accept-all 20, reject-all 8; all 28. Highest: 2026-W48 with 12." in (root[1].text or "")


def test_bar_heights_are_proportional_to_the_counts() -> None:
    root = parse(bar_chart(["a", "b"], week_series([10, 5]), title="t", description="d"))
    tall, short = by_class(root, "cg-bar")
    per_unit = (tick_y(root, "0") - tick_y(root, "10")) / 10
    assert float(tall.get("height", "")) == pytest.approx(10 * per_unit, abs=0.11)
    assert float(short.get("height", "")) == pytest.approx(5 * per_unit, abs=0.11)


def test_many_bars_are_one_path_per_series() -> None:
    counts = [d % 4 for d in range(365)]  # a quarter of them zero: no segment
    root = parse(
        bar_chart(DAYS, [Series("s", counts), Series("t", [1] * 365)], title="t", description="d")
    )
    paths = by_class(root, "cg-bar")
    assert [p.tag for p in paths] == [f"{SVG}path", f"{SVG}path"]
    assert [p.get("d", "").count("z") for p in paths] == [sum(1 for c in counts if c), 365]
    assert by_class(root, "cg-total") == []  # no room for them


def test_zero_totals_draw_an_axis_and_no_bars() -> None:
    root = parse(bar_chart(WEEKS, week_series([0] * 5), title="t", description="d"))
    assert by_class(root, "cg-bar") == []
    assert y_ticks(root) == [0, 1]
    assert by_class(root, "cg-no-data") == []


@pytest.mark.parametrize(
    "svg",
    [
        pytest.param(
            line_chart([], [], title="t", description="Opt-in", no_data="Keine Daten"),
            id="line-no-labels",
        ),
        pytest.param(
            line_chart(
                WEEKS,
                week_series([None] * 5),
                title="t",
                description="Opt-in",
                no_data="Keine Daten",
            ),
            id="line-all-none",
        ),
        pytest.param(
            bar_chart(WEEKS, [], title="t", description="Opt-in", no_data="Keine Daten"),
            id="bar-no-series",
        ),
        pytest.param(
            share_bar([("a", 0)], title="t", description="Opt-in", no_data="Keine Daten"),
            id="share-zero-total",
        ),
    ],
)
def test_no_data_draws_a_frame_with_the_message(svg: str) -> None:
    root = parse(svg)
    assert [shown_text(t) for t in by_class(root, "cg-no-data")] == ["Keine Daten"]
    assert len(by_class(root, "cg-frame")) == 1
    assert by_class(root, "cg-line") == by_class(root, "cg-bar") == []
    assert root[1].text == "Opt-in. Keine Daten"


@pytest.mark.parametrize(
    ("parts", "percents"),
    [
        pytest.param([("a", 1), ("b", 1), ("c", 1)], [34, 33, 33], id="thirds-add-up"),
        pytest.param([("a", 52), ("b", 34), ("c", 14)], [52, 34, 14], id="exact"),
        pytest.param([("a", 3), ("b", 0), ("c", 1)], [75, 0, 25], id="zero-part"),
    ],
)
def test_share_bar_splits_the_width_by_share(
    parts: list[tuple[str, float]], percents: list[int]
) -> None:
    root = parse(share_bar(parts, title="t", description="d", width=720))
    (legend,) = by_class(root, "cg-legend")
    assert [shown_text(t) for t in legend.iter(f"{SVG}text")] == [
        f"{name} {p} %" for (name, _), p in zip(parts, percents, strict=True)
    ]
    rects = by_class(root, "cg-bar")
    assert len(rects) == sum(1 for _, amount in parts if amount)
    widths = [float(r.get("width", "")) for r in rects]
    total = sum(amount for _, amount in parts)
    drawn = [amount for _, amount in parts if amount]
    for w, amount in zip(widths, drawn, strict=True):
        assert w == pytest.approx(amount / total * sum(widths), abs=0.11)
    xs = [float(r.get("x", "")) for r in rects]
    assert all(math.isclose(x + w, nxt) for x, w, nxt in zip(xs, widths, xs[1:], strict=False))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda: line_chart(WEEKS, [Series("etracker", [0.5] * 4)], title="t", description="d"),
            "series 'etracker' has 4 values for 5 labels",
            id="line-length",
        ),
        pytest.param(
            lambda: bar_chart(WEEKS, [Series("accept-all", [1] * 6)], title="t", description="d"),
            "series 'accept-all' has 6 values for 5 labels",
            id="bar-length",
        ),
        pytest.param(
            lambda: line_chart([], [Series("empty", [0.5])], title="t", description="d"),
            "series 'empty' has 1 values for 0 labels",
            id="no-labels-but-values",
        ),
        pytest.param(
            lambda: bar_chart(
                WEEKS, [Series("withdraw", [1, 2, -3, 4, 5])], title="t", description="d"
            ),
            "value -3 of series 'withdraw' at '2026-W46'",
            id="negative-count",
        ),
        pytest.param(
            lambda: bar_chart(["a"], [Series("s", [math.inf])], title="t", description="d"),
            "value inf of series 's'",
            id="infinite-count",
        ),
        pytest.param(
            lambda: line_chart(["a"], [Series("s", [math.nan])], title="t", description="d"),
            "value nan of series 's'",
            id="nan-rate",
        ),
        pytest.param(
            lambda: share_bar([("custom", -1)], title="t", description="d"),
            "amount -1 of part 'custom'",
            id="negative-share",
        ),
        pytest.param(
            lambda: line_chart(["a"], [], title="t", description="d", chart_id='x" onload="'),
            "chart_id 'x\" onload=\"'",
            id="bad-chart-id",
        ),
        pytest.param(
            lambda: bar_chart(["a"], [], title="t", description="d", width=10),
            "width 10 must be",
            id="too-narrow",
        ),
    ],
)
def test_refuses_bad_input_naming_it(call: Callable[[], str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_output_is_deterministic_across_processes() -> None:
    code = (
        "from consentgate.middleware.charts import Series, line_chart, bar_chart, share_bar\n"
        "s = [Series('etracker', [0.5, None, 0.7]), Series('YouTube', [0.1, 0.2, 0.3])]\n"
        "print(line_chart(['a', 'b', 'c'], s, title='t', description='d'))\n"
        "print(bar_chart(['a', 'b'], [Series('x', [1, 2])], title='t', description='d'))\n"
        "print(share_bar([('a', 1), ('b', 2)], title='t', description='d'))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    s = [Series("etracker", [0.5, None, 0.7]), Series("YouTube", [0.1, 0.2, 0.3])]
    here = "\n".join(
        [
            line_chart(["a", "b", "c"], s, title="t", description="d"),
            bar_chart(["a", "b"], [Series("x", [1, 2])], title="t", description="d"),
            share_bar([("a", 1), ("b", 2)], title="t", description="d"),
        ]
    )
    assert outputs == {here + "\n"}


def test_different_charts_on_one_page_have_different_ids() -> None:
    charts = [
        line_chart(WEEKS, week_series([0.5] * 5), title="Opt-in", description="Weekly"),
        line_chart(WEEKS, week_series([0.5] * 5), title="Opt-in", description="Monthly"),
        line_chart(WEEKS, week_series([0.4] * 5), title="Opt-in", description="Weekly"),
        bar_chart(WEEKS, week_series([1] * 5, [2] * 5), title="Opt-in", description="Weekly"),
        bar_chart(WEEKS, week_series([1] * 5, [3] * 5), title="Opt-in", description="Weekly"),
        share_bar([("a", 1), ("b", 2)], title="Opt-in", description="Weekly"),
        share_bar([("a", 1), ("b", 3)], title="Opt-in", description="Weekly"),
    ]
    ids = [e.get("id") for svg in charts for e in parse(svg).iter() if e.get("id")]
    assert len(ids) == len(set(ids))
    references = [ref for svg in charts for ref in re.findall(r"url\(#([^)]+)\)", svg)]
    assert references and set(references) <= set(ids)


def test_chart_id_prefixes_every_id() -> None:
    svg = bar_chart(
        WEEKS, week_series([1] * 5, [2] * 5), title="t", description="d", chart_id="decisions"
    )
    root = parse(svg)
    assert root.get("aria-labelledby") == "decisions-t decisions-d"
    ids = [e.get("id", "") for e in root.iter() if e.get("id")]
    assert len(ids) > 2 and all(i.startswith("decisions-") for i in ids)


def test_line_series_differ_in_dash_and_marker_not_only_colour() -> None:
    root = parse(line_chart(WEEKS, seasonal(5, 8), title="t", description="d"))
    series = by_class(root, "cg-series")
    dashes = {s.find(f"{SVG}path").get("stroke-dasharray") for s in series}  # type: ignore[union-attr]
    assert len(dashes) == 8
    # A marker's shape is its path data after the starting point.
    shapes = {
        re.sub(r"^M[-\d.]+ [-\d.]+", "", by_class(s, "cg-marker")[0].get("d", "")) for s in series
    }
    assert len(shapes) == 8
    colours = {s.find(f"{SVG}path").get("stroke") for s in series}  # type: ignore[union-attr]
    assert colours == set(PALETTE)


def test_wide_stacked_bars_get_distinct_fill_patterns() -> None:
    root = parse(bar_chart(WEEKS, week_series(*[[1] * 5] * 4), title="t", description="d"))
    fills = [s.get("fill", "") for s in by_class(root, "cg-series")]
    assert len(set(fills)) == 4
    patterns = {p.get("id") for p in root.iter(f"{SVG}pattern")}
    assert {f[5:-1] for f in fills[1:]} <= patterns  # url(#...) of a defined pattern


def contrast_with_white(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


@pytest.mark.parametrize("colour", PALETTE)
def test_palette_colours_have_three_to_one_contrast_on_white(colour: str) -> None:
    """WCAG 2.2 SC 1.4.11: graphical objects need 3:1 against what is next to them."""
    assert contrast_with_white(colour) >= 3
