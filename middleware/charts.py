"""Server-rendered SVG charts for the DPO dashboard: no JavaScript, no CDN, no dependencies.

Each function returns one inline ``<svg>`` element (no XML declaration) to put straight
into server-rendered HTML. The charts are accessible images: ``role="img"`` named by their
``<title>`` and described by their ``<desc>``, which gets a generated summary of the data
appended. Colour is never the only cue: lines differ in dash pattern and marker shape, bar
series in fill pattern (where the bars are wide enough to show one), and every legend entry
carries a name and, for bars, a total.

The output uses presentation attributes only, never ``style``, so it renders under a
Content-Security-Policy without ``'unsafe-inline'`` styles; it is pure ASCII (anything else is
a character reference), so the page's charset does not matter. The ``<svg>`` has
``width="100%"`` and no height: it scales with its container, keeping the ``viewBox`` aspect
ratio, so give the container a ``max-width`` near ``width`` to keep the text at its size.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Series", "bar_chart", "line_chart", "share_bar"]

#: Okabe & Ito (2008), "Color Universal Design", in the order series use them. Orange, sky
#: blue and yellow are darkened (same hue, x0.82 / x0.83 / x0.63) to reach 3:1 against white,
#: WCAG 2.2 SC 1.4.11 for graphical objects; the others pass as they are.
PALETTE = (
    "#0072B2",  # blue, 5.2:1
    "#D55E00",  # vermillion, 3.9:1
    "#009E73",  # bluish green, 3.4:1
    "#CC79A7",  # reddish purple, 3.1:1
    "#4794C0",  # sky blue (#56B4E9 darkened), 3.4:1
    "#BB8200",  # orange (#E69F00 darkened), 3.3:1
    "#000000",  # black
    "#97902A",  # yellow (#F0E442 darkened), 3.3:1
)
#: ``stroke-dasharray`` per line series (stroke width 2); "" is solid.
DASHES = ("", "8 4", "2 3", "10 3 2 3", "4 2", "12 3 2 3 2 3", "6 6", "1 4")
#: Marker shape per line series, drawn at the points and in the legend.
MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down", "plus", "cross", "hexagon")
#: Fill pattern per bar series (see ``_pattern``); "solid" needs no pattern.
PATTERNS = ("solid", "diagonal", "dots", "horizontal", "crosshatch", "back-diagonal", "vertical")
#: Bars or segments narrower than this get plain fills: a pattern on them is only a blur.
PATTERN_MIN_WIDTH = 6.0

FONT_FAMILY = "system-ui, sans-serif"
FONT_SIZE = 12
TICK_FONT_SIZE = 11
NO_DATA_FONT_SIZE = 14
#: Average advance of a character as a share of the font size, for layout estimates only;
#: generous (DejaVu Sans, the fallback on many Linux desktops, is wide).
CHAR_WIDTH = 0.6

TEXT_COLOR = "#222222"
MUTED_TEXT_COLOR = "#555555"  # 7.5:1 on white
AXIS_COLOR = "#767676"  # 4.5:1 on white
GRID_COLOR = "#E3E3E3"
FRAME_FILL = "#FAFAFA"
FRAME_STROKE = "#DDDDDD"

PADDING = 8.0
LEGEND_ROW_HEIGHT = 20.0
LEGEND_GAP = 18.0
LEGEND_MAX_CHARS = 28
X_LABEL_MAX_CHARS = 16
#: The x axis names at most this many labels, however many there are (the first and the
#: last always among them).
X_LABELS_MAX = 12
X_LABEL_GAP = 14.0
#: Intervals the y axis aims for; a "nice" step (1, 2 or 5 x 10^n) can make it 3 to 6.
Y_TICK_INTERVALS = 4
#: Up to this many labels every point gets a marker with a tooltip; above it only the
#: labelled x positions, the last point and isolated points do (a 365-day chart stays small).
MARKER_MAX_POINTS = 60
#: Up to this many labels every bar segment is its own ``<rect>`` with a tooltip; above it a
#: series is one ``<path>``.
BAR_TOOLTIP_MAX_LABELS = 60
MIN_PLOT_HEIGHT = 80.0
MIN_WIDTH = 160
MIN_HEIGHT = 40
ELLIPSIS = "\u2026"
#: Thousands separator in numbers: a narrow no-break space (SI, ISO 80000-1), readable in
#: every locale, unlike "," or ".".
THOUSANDS_SEPARATOR = "\u202f"

# Characters XML 1.0 does not allow (section 2.2); they become U+FFFD so the output parses.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WHITESPACE = re.compile(r"[\t\n\r]")
_CHART_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of values, one per label; ``None`` means no data for that label."""

    name: str
    values: Sequence[float | None]


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    description: str,
    percent: bool = True,
    width: int = 720,
    height: int = 260,
    no_data: str = "No data",
    chart_id: str | None = None,
) -> str:
    """Return an SVG line chart with one line per series over ``labels``.

    With ``percent`` the values are shares in 0..1, clamped to that range, and the y axis
    runs from 0 to 100 %; without it the axis gets "nice" ticks covering the values. ``None``
    leaves a gap in the line; a point with no neighbour is still drawn as its marker. Raises
    ``ValueError`` when a series does not have one value per label or a value is not finite.
    ``chart_id`` (letters, digits, ``-``, ``_``) prefixes the element ids; by default it is
    derived from all arguments, so different charts on one page get different ids (pass
    one to show the same chart twice on a page).
    """
    _check_size(width, height)
    labels = list(labels)
    rows = _rows(labels, series, clamp=percent, counts=False)
    names = [s.name for s in series]
    cid = _chart_id(
        chart_id, "line", labels, names, rows, title, description, no_data, percent, width, height
    )
    count = len(labels)
    if not rows or all(v is None for row in rows for v in row):
        return _empty(cid, width, height, title, description, no_data)

    present = [v for row in rows for v in row if v is not None]
    if percent:
        ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
        tick_texts = [_percent(t) for t in ticks]

        def fmt(value: float) -> str:
            return _percent(value)
    else:
        ticks, decimals = _nice_ticks(min(0.0, *present), max(present), integer=False)
        tick_texts = [_number(t, decimals) for t in ticks]

        def fmt(value: float) -> str:
            return _number(value)

    summary = _line_summary(labels, names, rows, fmt)
    legend_texts = [_legend_label(n) for n in names]
    layout = _Layout(width, height, tick_texts, legend_texts, 24.0)
    lo, hi = ticks[0], ticks[-1]
    inner_left, inner_right = layout.left + 8, layout.right - 8
    if count == 1:
        xs = [(inner_left + inner_right) / 2]
    else:
        step = (inner_right - inner_left) / (count - 1)
        xs = [inner_left + i * step for i in range(count)]
    shown = _thin(labels, inner_right - inner_left)
    out = _open(cid, width, layout.height, title, _join(description, summary))
    out += _y_axis(layout, ticks, tick_texts)
    out.append(_baseline(layout, ticks))  # under the lines: one at 0 % stays visible
    out += _x_axis(layout, labels, xs, shown, width)

    for index, (name, row) in enumerate(zip(names, rows, strict=True)):
        color, dash, marker = _line_style(index)
        ys: list[float | None] = [
            None if v is None else layout.bottom - (v - lo) / (hi - lo) * layout.plot_height
            for v in row
        ]
        out.append('<g class="cg-series">')
        d = _polyline(xs, ys)
        if d:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<path class="cg-line" d="{d}" fill="none" stroke="{color}" '
                f'stroke-width="2" stroke-linejoin="round"{dash_attr}/>'
            )
        marked = _marked(ys, shown)
        out.append(f'<g fill="{color}" stroke="#fff" stroke-width="1">')
        for i in marked:
            y = ys[i]
            value = row[i]
            assert y is not None and value is not None
            tip = _esc(f"{name}, {labels[i]}: {fmt(value)}")
            d = _marker(marker, xs[i], y)
            out.append(f'<path class="cg-marker" d="{d}"><title>{tip}</title></path>')
        out.append("</g></g>")

    def sample(index: int, x: float, y: float) -> str:
        color, dash, marker = _line_style(index)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        return (
            f'<path d="M{_n(x)} {_n(y)}h24" stroke="{color}" stroke-width="2"{dash_attr}/>'
            f'<path d="{_marker(marker, x + 12, y)}" fill="{color}" stroke="#fff" '
            'stroke-width="1"/>'
        )

    out += _legend(layout, legend_texts, names, sample)
    out.append("</svg>")
    return _finish(out)


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    description: str,
    width: int = 720,
    height: int = 260,
    no_data: str = "No data",
    chart_id: str | None = None,
) -> str:
    """Return an SVG chart of stacked bars, one bar per label, counts of each series stacked.

    The series stack bottom to top in the order given, which is also the legend's order; the
    legend shows each series' total and, where they fit, the bars are labelled with theirs.
    The y axis gets "nice" ticks (1, 2 or 5 x 10^n, whole numbers) covering the highest bar.
    ``None`` counts as no bar segment. Raises ``ValueError`` for a negative or non-finite
    count, naming it, and when a series does not have one value per label. ``chart_id`` as
    for ``line_chart``.
    """
    _check_size(width, height)
    labels = list(labels)
    rows = _rows(labels, series, clamp=False, counts=True)
    names = [s.name for s in series]
    cid = _chart_id(
        chart_id, "bar", labels, names, rows, title, description, no_data, width, height
    )
    count = len(labels)
    if not rows or all(v is None for row in rows for v in row):
        return _empty(cid, width, height, title, description, no_data)

    totals = [sum(row[i] or 0.0 for row in rows) for i in range(count)]
    series_totals = [sum(v or 0.0 for v in row) for row in rows]
    ticks, _ = _nice_ticks(0.0, max(totals), integer=True)
    tick_texts = [_number(t) for t in ticks]
    legend_labels = [
        f"{_legend_label(n)} ({_number(t)})" for n, t in zip(names, series_totals, strict=True)
    ]
    # Probe the layout once to learn the band width, then reserve room above the plot for
    # the total labels if they fit on the bars.
    probe = _Layout(width, height, tick_texts, legend_labels, 12.0)
    band = (probe.right - probe.left) / count
    label_width = max(_text_width(_number(t), TICK_FONT_SIZE) for t in totals)
    show_totals = band >= label_width + 4
    # The headroom moves only the top of the plot: the band stays as probed.
    layout = _Layout(width, height, tick_texts, legend_labels, 12.0, 14.0 if show_totals else 0.0)
    bar_width = band * 0.7 if band >= 4 else band * 0.85
    patterned = bar_width >= PATTERN_MIN_WIDTH
    fills = [_bar_fill(cid, i, patterned) for i in range(len(rows))]
    xs = [layout.left + (i + 0.5) * band for i in range(count)]
    top = ticks[-1]

    def y_of(value: float) -> int:
        return _t(layout.bottom - value / top * layout.plot_height)

    out = _open(
        cid,
        width,
        layout.height,
        title,
        _join(description, _bar_summary(labels, names, rows, totals, series_totals)),
    )
    if patterned:
        out += _patterns(cid, len(rows))
    out += _y_axis(layout, ticks, tick_texts)
    out += _x_axis(layout, labels, xs, _thin(labels, layout.right - layout.left), width)
    stacked = [0.0] * count
    tooltips = count <= BAR_TOOLTIP_MAX_LABELS
    for index, (name, row) in enumerate(zip(names, rows, strict=True)):
        separator = ' stroke="#fff" stroke-width="1"' if patterned else ""
        out.append(f'<g class="cg-series" fill="{fills[index]}"{separator}>')
        parts: list[str] = []
        for i, value in enumerate(row):
            if not value:
                continue
            y0, y1 = y_of(stacked[i]), y_of(stacked[i] + value)
            stacked[i] += value
            if y0 == y1:
                continue
            x = _t(xs[i] - bar_width / 2)
            w = max(1, _t(bar_width))
            if tooltips:
                tip = _esc(f"{name}, {labels[i]}: {_number(value)}")
                parts.append(
                    f'<rect class="cg-bar" x="{_f(x)}" y="{_f(y1)}" width="{_f(w)}" '
                    f'height="{_f(y0 - y1)}"><title>{tip}</title></rect>'
                )
            else:
                parts.append(f"M{_f(x)} {_f(y1)}h{_f(w)}v{_f(y0 - y1)}h{_f(-w)}z")
        if tooltips:
            out += parts
        elif parts:
            out.append(f'<path class="cg-bar" d="{"".join(parts)}"/>')
        out.append("</g>")
    # Over the bars: their white outlines would cut it into dashes.
    out.append(_baseline(layout, ticks))
    if show_totals:
        out.append(
            f'<g class="cg-totals" fill="{TEXT_COLOR}" font-size="{TICK_FONT_SIZE}" '
            'text-anchor="middle">'
        )
        for i, total in enumerate(totals):
            if all(row[i] is None for row in rows):
                continue
            out.append(
                # 4 px (40 tenths) above the bar.
                f'<text class="cg-total" x="{_n(xs[i])}" y="{_f(y_of(total) - 40)}">'
                f"{_esc(_number(total))}</text>"
            )
        out.append("</g>")

    def sample(index: int, x: float, y: float) -> str:
        return f'<rect x="{_n(x)}" y="{_n(y - 6)}" width="12" height="12" fill="{fills[index]}"/>'

    out += _legend(layout, legend_labels, names, sample)
    out.append("</svg>")
    return _finish(out)


def share_bar(
    parts: Sequence[tuple[str, float]],
    *,
    title: str,
    description: str,
    width: int = 720,
    height: int = 48,
    no_data: str = "No data",
    chart_id: str | None = None,
) -> str:
    """Return an SVG of one horizontal bar split into the shares of ``parts``, left to right.

    ``parts`` are ``(name, amount)`` pairs, amounts in any unit (counts, say); the legend below
    the bar names each part with its share in whole percent, rounded so they add up to 100.
    It grows taller than ``height`` if the legend needs more rows. With no parts or a zero
    total the bar is an empty frame with ``no_data``. Raises ``ValueError`` for a negative or
    non-finite amount, naming it. ``chart_id`` as for ``line_chart``.
    """
    if type(width) is not int or width < MIN_WIDTH:
        raise ValueError(f"width {width!r} must be a whole number of at least {MIN_WIDTH}")
    if type(height) is not int or height < 24:
        raise ValueError(f"height {height!r} must be a whole number of at least 24")
    amounts: list[float] = []
    for name, amount in parts:
        value = float(amount)
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"amount {amount!r} of part {name!r} must be a finite number of at least 0"
            )
        amounts.append(value)
    names = [name for name, _ in parts]
    cid = _chart_id(chart_id, "share", names, amounts, title, description, no_data, width, height)
    total = sum(amounts)
    left, right = PADDING, width - PADDING
    bar_top, bar_height = 4.0, 20.0
    if total <= 0:
        out = _open(cid, width, height, title, _join(description, no_data))
        out.append(_frame(left, bar_top, right - left, bar_height, no_data, TICK_FONT_SIZE))
        out.append("</svg>")
        return _finish(out)

    shares = _whole_percents(amounts)
    labels = [f"{_legend_label(n)} {s} %" for n, s in zip(names, shares, strict=True)]
    fills = [_bar_fill(cid, i, True) for i in range(len(parts))]
    rows, positions = _legend_rows(labels, 12.0, left, right)
    svg_height = max(float(height), bar_top + bar_height + 4 + rows * LEGEND_ROW_HEIGHT)
    summary = ", ".join(f"{n} {s} %" for n, s in zip(names, shares, strict=True))
    summary = f"{summary} (of {_number(total)})."
    out = _open(cid, width, svg_height, title, _join(description, summary))
    out += _patterns(cid, len(parts))
    out.append('<g class="cg-series" stroke="#fff" stroke-width="1">')
    edge = 0.0
    for index, amount in enumerate(amounts):
        x0 = _t(left + edge / total * (right - left))
        edge += amount
        x1 = _t(left + edge / total * (right - left))
        if x1 == x0:
            continue
        tip = _esc(f"{names[index]}: {shares[index]} % ({_number(amount)})")
        out.append(
            f'<rect class="cg-bar" x="{_f(x0)}" y="{_n(bar_top)}" width="{_f(x1 - x0)}" '
            f'height="{_n(bar_height)}" fill="{fills[index]}"><title>{tip}</title></rect>'
        )
    out.append("</g>")
    legend_top = bar_top + bar_height + 4
    out.append(f'<g class="cg-legend" fill="{TEXT_COLOR}" font-size="{FONT_SIZE}">')
    for index, (x, row) in enumerate(positions):
        y = legend_top + row * LEGEND_ROW_HEIGHT + LEGEND_ROW_HEIGHT / 2
        out.append(
            f'<rect x="{_n(x)}" y="{_n(y - 6)}" width="12" height="12" fill="{fills[index]}"/>'
        )
        full = labels[index] if ELLIPSIS not in labels[index] else names[index]
        out.append(_label(x + 18, y + 4, labels[index], full))
    out.append("</g></svg>")
    return _finish(out)


# --- layout ----------------------------------------------------------------------------------


class _Layout:
    """Where the legend, the plot area and the axes go in a line or bar chart."""

    def __init__(
        self,
        width: int,
        height: int,
        tick_texts: Sequence[str],
        legend_labels: Sequence[str],
        sample_width: float,
        headroom: float = 0.0,
    ) -> None:
        tick_width = max(_text_width(t, TICK_FONT_SIZE) for t in tick_texts)
        self.left = PADDING + tick_width + 8
        self.right = width - PADDING - 4
        self.sample_width = sample_width
        self.legend_rows, self.legend_positions = _legend_rows(
            legend_labels, sample_width, self.left, self.right
        )
        self.legend_top = PADDING
        # 10 below the legend also keeps the top tick label (centred on its line) inside.
        self.top = self.legend_top + self.legend_rows * LEGEND_ROW_HEIGHT + 10 + headroom
        self.height = max(float(height), self.top + MIN_PLOT_HEIGHT + 26)
        self.bottom = self.height - 26
        self.plot_height = self.bottom - self.top


def _legend_rows(
    labels: Sequence[str], sample_width: float, left: float, right: float
) -> tuple[int, list[tuple[float, int]]]:
    """Place legend entries in rows from ``left``; return the row count and each x and row."""
    positions: list[tuple[float, int]] = []
    x, row = left, 0
    for label in labels:
        item = sample_width + 6 + _text_width(label, FONT_SIZE)
        if x > left and x + item > right:
            x, row = left, row + 1
        positions.append((x, row))
        x += item + LEGEND_GAP
    return (row + 1 if labels else 0), positions


def _legend(
    layout: _Layout,
    texts: Sequence[str],
    names: Sequence[str],
    sample: Callable[[int, float, float], str],
) -> list[str]:
    """Draw the legend entries placed by ``layout``: a sample of the series, then its text.

    A text that had to be shortened gets the series' full name as its tooltip.
    """
    out = [f'<g class="cg-legend" fill="{TEXT_COLOR}" font-size="{FONT_SIZE}">']
    for index, (x, row) in enumerate(layout.legend_positions):
        y = layout.legend_top + row * LEGEND_ROW_HEIGHT + LEGEND_ROW_HEIGHT / 2
        out.append(sample(index, x, y))
        full = texts[index] if ELLIPSIS not in texts[index] else names[index]
        out.append(_label(x + layout.sample_width + 6, y + 4, texts[index], full))
    out.append("</g>")
    return out


def _y_axis(layout: _Layout, ticks: Sequence[float], texts: Sequence[str]) -> list[str]:
    """Draw horizontal grid lines at ``ticks`` with their labels left of the plot."""
    lo, hi = ticks[0], ticks[-1]
    out = [
        f'<g class="cg-y" fill="{MUTED_TEXT_COLOR}" font-size="{TICK_FONT_SIZE}" text-anchor="end">'
    ]
    grid: list[str] = []
    for tick, text in zip(ticks, texts, strict=True):
        y = layout.bottom - (tick - lo) / (hi - lo) * layout.plot_height
        out.append(f'<text x="{_n(layout.left - 8)}" y="{_n(y)}" dy="0.35em">{_esc(text)}</text>')
        if tick != 0:
            grid.append(f"M{_n(layout.left)} {_n(y)}H{_n(layout.right)}")
    out.append("</g>")
    if grid:
        out.append(f'<path class="cg-grid" d="{"".join(grid)}" stroke="{GRID_COLOR}"/>')
    return out


def _baseline(layout: _Layout, ticks: Sequence[float]) -> str:
    """Draw the axis line at zero (or at the lowest tick if zero is off the axis)."""
    lo, hi = ticks[0], ticks[-1]
    zero = 0.0 if lo <= 0 <= hi else lo
    y = layout.bottom - (zero - lo) / (hi - lo) * layout.plot_height
    return (
        f'<path class="cg-baseline" d="M{_n(layout.left)} {_n(y)}H{_n(layout.right)}" '
        f'stroke="{AXIS_COLOR}"/>'
    )


def _x_axis(
    layout: _Layout, labels: Sequence[str], xs: Sequence[float], shown: Sequence[int], width: int
) -> list[str]:
    """Draw tick marks and labels under the plot for the label indexes in ``shown``."""
    out = [
        f'<g class="cg-x" fill="{MUTED_TEXT_COLOR}" font-size="{TICK_FONT_SIZE}" '
        'text-anchor="middle">'
    ]
    placed: list[tuple[int, str, float, float]] = []  # index, text, x, half its width
    for i in shown:
        text = _truncate(labels[i], X_LABEL_MAX_CHARS)
        half = _text_width(text, TICK_FONT_SIZE) / 2
        # Centred under its point, but pushed inside the SVG at either end; pushing the last
        # one in can make it run into the one before, which then gives way.
        x = min(max(xs[i], half + 2), width - half - 2)
        if i == shown[-1]:
            # The last label always stays; the ones before it (but not the first) give way.
            while len(placed) > 1 and _collide(placed[-1], x, half):
                placed.pop()
        elif placed and _collide(placed[-1], x, half):
            continue
        placed.append((i, text, x, half))
    marks: list[str] = []
    for i, text, x, _ in placed:
        out.append(_label(x, layout.bottom + 17, text, labels[i]))
        marks.append(f"M{_n(xs[i])} {_n(layout.bottom)}v4")
    out.append("</g>")
    out.append(f'<path d="{"".join(marks)}" stroke="{AXIS_COLOR}"/>')
    return out


def _collide(previous: tuple[int, str, float, float], x: float, half: float) -> bool:
    """Tell whether a label centred on ``x`` comes too close to the ``previous`` one."""
    return x - half < previous[2] + previous[3] + X_LABEL_GAP / 2


def _thin(labels: Sequence[str], span: float) -> list[int]:
    """Return the indexes of the labels to show: evenly spaced, always the first and last."""
    count = len(labels)
    if count <= 1:
        return list(range(count))
    widest = max(
        _text_width(_truncate(label, X_LABEL_MAX_CHARS), TICK_FONT_SIZE) for label in labels
    )
    # Centres need ``widest + gap`` between them, and the first and last label may be pushed
    # in by up to half their width to stay inside the SVG.
    fit = max(2, min(X_LABELS_MAX, int((span - widest) // (widest + X_LABEL_GAP)) + 1))
    if count <= fit:
        return list(range(count))
    step = math.ceil((count - 1) / (fit - 1))
    shown = list(range(0, count - 1, step))
    if count - 1 - shown[-1] < step / 2 and len(shown) > 1:
        shown.pop()  # too close to the last label, which always stays
    shown.append(count - 1)
    return shown


def _empty(cid: str, width: int, height: int, title: str, description: str, no_data: str) -> str:
    """Return the chart frame with ``no_data`` in it, for charts with nothing to draw."""
    out = _open(cid, width, height, title, _join(description, no_data))
    out.append(
        _frame(
            PADDING, PADDING, width - 2 * PADDING, height - 2 * PADDING, no_data, NO_DATA_FONT_SIZE
        )
    )
    out.append("</svg>")
    return _finish(out)


def _frame(x: float, y: float, w: float, h: float, text: str, size: int) -> str:
    """Draw an empty frame with ``text`` in its middle."""
    return (
        f'<rect class="cg-frame" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" '
        f'fill="{FRAME_FILL}" stroke="{FRAME_STROKE}"/>'
        f'<text class="cg-no-data" x="{_n(x + w / 2)}" y="{_n(y + h / 2)}" dy="0.35em" '
        f'text-anchor="middle" font-size="{size}" fill="{MUTED_TEXT_COLOR}">'
        f"{_esc(_truncate(text, 80))}</text>"
    )


def _open(cid: str, width: int, height: float, title: str, desc: str) -> list[str]:
    """Start an accessible ``<svg>``: its ``<title>`` and ``<desc>`` name and describe it."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cg-chart" role="img" '
        f'aria-labelledby="{cid}-t {cid}-d" viewBox="0 0 {width} {_n(height)}" width="100%" '
        f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}">',
        f'<title id="{cid}-t">{_esc(title)}</title>',
        f'<desc id="{cid}-d">{_esc(desc)}</desc>',
    ]


def _finish(parts: list[str]) -> str:
    """Join the parts, turning anything outside ASCII into character references."""
    return "\n".join(parts).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _label(x: float, y: float, text: str, full: str) -> str:
    """Draw ``text`` at ``x, y``; a truncated one gets the full text as its tooltip."""
    tip = f"<title>{_esc(full)}</title>" if text != full else ""
    return f'<text x="{_n(x)}" y="{_n(y)}">{tip}{_esc(text)}</text>'


def _legend_label(name: str) -> str:
    return _truncate(name, LEGEND_MAX_CHARS)


# --- marks -----------------------------------------------------------------------------------


def _line_style(index: int) -> tuple[str, str, str]:
    """Return the colour, dash pattern and marker of line series ``index``."""
    # The marker shifts by one every full round, so series 9 is not a copy of series 1.
    marker = MARKERS[(index + index // len(MARKERS)) % len(MARKERS)]
    return PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)], marker


def _polyline(xs: Sequence[float], ys: Sequence[float | None]) -> str:
    """Return path data through the points, broken where y is ``None``.

    Each run is a move to its first point, then relative steps computed from the rounded
    absolute points, so the rounding never drifts and the data stays small.
    """
    runs: list[str] = []
    steps: list[str] = []
    previous: tuple[int, int] | None = None
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            previous = None
            continue
        point = (_t(x), _t(y))
        if previous is None:
            if steps:
                runs[-1] += "l" + " ".join(steps)
                steps = []
            runs.append(f"M{_f(point[0])} {_f(point[1])}")
        else:
            steps.append(f"{_f(point[0] - previous[0])} {_f(point[1] - previous[1])}")
        previous = point
    if steps:
        runs[-1] += "l" + " ".join(steps)
    # A run of one point is a bare move and draws nothing; its marker shows the point.
    return "".join(run for run in runs if "l" in run)


def _marked(ys: Sequence[float | None], shown: Sequence[int]) -> list[int]:
    """Return the indexes of the points that get a marker (see ``MARKER_MAX_POINTS``)."""
    present = [i for i, y in enumerate(ys) if y is not None]
    if len(ys) <= MARKER_MAX_POINTS:
        return present
    isolated = {
        i
        for i in present
        if (i == 0 or ys[i - 1] is None) and (i == len(ys) - 1 or ys[i + 1] is None)
    }
    wanted = {i for i in shown if ys[i] is not None} | isolated
    if present:
        wanted.add(present[-1])
    return sorted(wanted)


def _shape(points: Sequence[tuple[float, float]]) -> tuple[tuple[int, int], ...]:
    """Return polygon offsets in tenths of a pixel."""
    return tuple((round(x * 10), round(y * 10)) for x, y in points)


def _rotated(points: Sequence[tuple[float, float]], degrees: float) -> list[tuple[float, float]]:
    a = math.radians(degrees)
    return [
        (x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)) for x, y in points
    ]


_PLUS = [(-1.5, -4.5), (1.5, -4.5), (1.5, -1.5), (4.5, -1.5), (4.5, 1.5), (1.5, 1.5), (1.5, 4.5),
         (-1.5, 4.5), (-1.5, 1.5), (-4.5, 1.5), (-4.5, -1.5), (-1.5, -1.5)]  # fmt: skip
_SHAPES: dict[str, tuple[tuple[int, int], ...]] = {
    "square": _shape([(-3.5, -3.5), (3.5, -3.5), (3.5, 3.5), (-3.5, 3.5)]),
    "triangle": _shape([(0, -4.7), (4.5, 3.3), (-4.5, 3.3)]),
    "diamond": _shape([(0, -5), (5, 0), (0, 5), (-5, 0)]),
    "triangle-down": _shape([(0, 4.7), (4.5, -3.3), (-4.5, -3.3)]),
    "plus": _shape(_PLUS),
    "cross": _shape(_rotated([(x * 1.1, y * 1.1) for x, y in _PLUS], 45)),
    "hexagon": _shape([_rotated([(4.7, 0.0)], 60 * k + 30)[0] for k in range(6)]),
}
_CIRCLE_RADIUS = 4


def _marker(kind: str, x: float, y: float) -> str:
    """Return path data for a marker of shape ``kind`` centred on ``x, y``."""
    cx, cy = _t(x), _t(y)
    if kind == "circle":
        r = _CIRCLE_RADIUS
        return f"M{_f(cx - r * 10)} {_f(cy)}a{r} {r} 0 1 0 {2 * r} 0a{r} {r} 0 1 0 {-2 * r} 0z"
    points = _SHAPES[kind]
    steps = " ".join(f"{_f(b[0] - a[0])} {_f(b[1] - a[1])}" for a, b in itertools.pairwise(points))
    return f"M{_f(cx + points[0][0])} {_f(cy + points[0][1])}l{steps}z"


def _bar_fill(cid: str, index: int, patterned: bool) -> str:
    """Return the ``fill`` of bar series ``index``: its colour or its pattern."""
    pattern = PATTERNS[index % len(PATTERNS)]
    if not patterned or pattern == "solid":
        return PALETTE[index % len(PALETTE)]
    return f"url(#{cid}-p{index})"


def _patterns(cid: str, count: int) -> list[str]:
    """Return the ``<defs>`` with one fill pattern per bar series: colour plus white marks."""
    out: list[str] = []
    for index in range(count):
        kind = PATTERNS[index % len(PATTERNS)]
        if kind == "solid":
            continue
        color = PALETTE[index % len(PALETTE)]
        marks = {
            "diagonal": ("M0 0V6", ' patternTransform="rotate(45)"'),
            "back-diagonal": ("M0 0V6", ' patternTransform="rotate(-45)"'),
            "crosshatch": ("M0 0V6M0 0H6", ' patternTransform="rotate(45)"'),
            "horizontal": ("M0 0H6", ""),
            "vertical": ("M0 0V6", ""),
            "dots": ("M3 3h.01", ""),
        }[kind]
        width = "3" if kind == "dots" else "1.5"
        cap = ' stroke-linecap="round"' if kind == "dots" else ""
        out.append(
            f'<pattern id="{cid}-p{index}" width="6" height="6" patternUnits="userSpaceOnUse"'
            f'{marks[1]}><rect width="6" height="6" fill="{color}"/>'
            f'<path d="{marks[0]}" stroke="#fff" stroke-opacity="0.6" stroke-width="{width}"{cap}/>'
            "</pattern>"
        )
    return ["<defs>", *out, "</defs>"] if out else []


# --- data ------------------------------------------------------------------------------------


def _check_size(width: int, height: int) -> None:
    if type(width) is not int or width < MIN_WIDTH:
        raise ValueError(f"width {width!r} must be a whole number of at least {MIN_WIDTH}")
    if type(height) is not int or height < MIN_HEIGHT:
        raise ValueError(f"height {height!r} must be a whole number of at least {MIN_HEIGHT}")


def _rows(
    labels: Sequence[str], series: Sequence[Series], *, clamp: bool, counts: bool
) -> list[list[float | None]]:
    """Return the series' values as floats, checked; clamped to 0..1 with ``clamp``."""
    rows: list[list[float | None]] = []
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(
                f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels; "
                "it needs one value (or None) per label"
            )
        row: list[float | None] = []
        for label, value in zip(labels, s.values, strict=True):
            if value is None:
                row.append(None)
                continue
            number = float(value)
            if not math.isfinite(number) or (counts and number < 0):
                allowed = "a count of at least 0" if counts else "a finite number"
                raise ValueError(
                    f"value {value!r} of series {s.name!r} at {label!r} must be {allowed}"
                )
            row.append(min(1.0, max(0.0, number)) if clamp else number)
        rows.append(row)
    return rows


def _chart_id(chart_id: str | None, *parts: object) -> str:
    """Return ``chart_id`` checked, or one derived from the chart's arguments."""
    if chart_id is not None:
        if not isinstance(chart_id, str) or not _CHART_ID.match(chart_id):
            raise ValueError(
                f"chart_id {chart_id!r} must start with a letter and have only letters, "
                "digits, '-' and '_' (at most 64)"
            )
        return chart_id
    # repr() of str, float, int and lists of them is stable across runs and complete (no
    # hash randomisation, no "..." as numpy would print).
    return "cg-" + hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _nice_ticks(lo: float, hi: float, *, integer: bool) -> tuple[list[float], int]:
    """Return ticks with a step of 1, 2 or 5 x 10^n covering ``lo..hi``, and their decimals."""
    if not hi - lo >= 1e-12:
        hi = lo + 1  # all equal (or nearly: the step must not underflow); show a unit range
    raw = (hi - lo) / Y_TICK_INTERVALS
    exponent = math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if multiple * 10.0**exponent >= raw * (1 - 1e-9):
            break
    if multiple == 10:
        multiple, exponent = 1, exponent + 1
    if integer and exponent < 0:
        multiple, exponent = 1, 0
    decimals = max(0, -exponent)
    step = multiple * 10.0**exponent
    first = math.floor(lo / step + 1e-9)
    last = max(first + 1, math.ceil(hi / step - 1e-9))
    return [round(k * step, decimals) for k in range(first, last + 1)], decimals


def _whole_percents(amounts: Sequence[float]) -> list[int]:
    """Return the amounts' shares in whole percent adding up to 100 (largest remainder)."""
    total = sum(amounts)
    exact = [a / total * 100 for a in amounts]
    shares = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (shares[i] - exact[i], i))
    for i in by_remainder[: 100 - sum(shares)]:
        shares[i] += 1
    return shares


def _line_summary(
    labels: Sequence[str],
    names: Sequence[str],
    rows: Sequence[Sequence[float | None]],
    fmt: Callable[[float], str],
) -> str:
    """Return "N points from A to B. Latest (B): x 62 %, y 48 %." for the ``<desc>``."""
    span = (
        f"1 point, {labels[0]}."
        if len(labels) == 1
        else f"{len(labels)} points from {labels[0]} to {labels[-1]}."
    )
    latest: list[tuple[str, int | None, float | None]] = []
    for name, row in zip(names, rows, strict=True):
        last = next((i for i in range(len(row) - 1, -1, -1) if row[i] is not None), None)
        latest.append((name, last, None if last is None else row[last]))
    indexes = {i for _, i, _ in latest if i is not None}
    if len(indexes) == 1:
        (at,) = indexes
        items = [f"{n} {fmt(v)}" if v is not None else f"{n} no data" for n, _, v in latest]
        return f"{span} Latest ({labels[at]}): {', '.join(items)}."
    items = [
        f"{n} {fmt(v)} ({labels[i]})" if i is not None and v is not None else f"{n} no data"
        for n, i, v in latest
    ]
    return f"{span} Latest: {', '.join(items)}."


def _bar_summary(
    labels: Sequence[str],
    names: Sequence[str],
    rows: Sequence[Sequence[float | None]],
    totals: Sequence[float],
    series_totals: Sequence[float],
) -> str:
    """Return the totals per series and overall and the highest bar, for the ``<desc>``."""
    span = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
    items = ", ".join(f"{n} {_number(t)}" for n, t in zip(names, series_totals, strict=True))
    peak = max(range(len(totals)), key=lambda i: (totals[i], -i))
    highest = f" Highest: {labels[peak]} with {_number(totals[peak])}." if totals[peak] else ""
    return (
        f"Totals for {span}: {items}; all {_number(sum(series_totals))}.{highest} "
        "Bars stack the series bottom to top in legend order."
    )


# --- text and numbers ------------------------------------------------------------------------


def _esc(text: str) -> str:
    """Return ``text`` escaped for XML content and attributes, characters XML forbids replaced."""
    return html.escape(_NOT_XML.sub("\ufffd", _WHITESPACE.sub(" ", str(text))), quote=True)


def _truncate(text: str, limit: int) -> str:
    text = _WHITESPACE.sub(" ", str(text))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _text_width(text: str, size: float) -> float:
    """Estimate the width of ``text`` in pixels (wide East Asian characters count double)."""
    units = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return units * CHAR_WIDTH * size


def _join(description: str, summary: str) -> str:
    description = description.strip()
    if description and description[-1] not in ".!?":
        description += "."
    return f"{description} {summary}".strip()


def _percent(value: float) -> str:
    return f"{round(value * 100)} %"


def _number(value: float, decimals: int | None = None) -> str:
    """Format ``value`` with a narrow no-break space between thousands; whole numbers bare."""
    if decimals is None:
        decimals = 0 if value == round(value) else 2
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text.replace(",", THOUSANDS_SEPARATOR)


def _t(value: float) -> int:
    """Return ``value`` in whole tenths: coordinates are kept to one decimal."""
    return round(value * 10)


def _f(tenths: int) -> str:
    """Format a number of tenths as a decimal: ``123`` -> ``"12.3"``, ``120`` -> ``"12"``."""
    sign = "-" if tenths < 0 else ""
    whole, tenth = divmod(abs(tenths), 10)
    return f"{sign}{whole}.{tenth}" if tenth else f"{sign}{whole}"


def _n(value: float) -> str:
    return _f(_t(value))
