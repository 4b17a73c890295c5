"""The pack's pictures as inline SVG (no script, no external file, so the page works offline and prints):
timelines of lanes with spans and marks, and coverage over time as stacked steps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from html import escape

from ppcmk.evidence.model import CoveragePoint, Lane, Period

WIDTH, LABEL, LANE, AXIS = 1000, 230, 30, 26
SPAN_COLOURS = {"version": "#9ecae1", "hold": "#fdd49e", "cmk": "#74c476", "outage": "#fb6a4a",
                "lock": "#9e9ac8"}
MARK_COLOURS = {"version": "#08519c", "rotation": "#3182bd", "expiry": "#cb181d", "pickup": "#006d2c",
                "revert": "#d94801", "change": "#54278f"}
ON, OFF = "#31a354", "#d9d9d9"
NARROW = ("outage", "lock", "hold")


def _x(moment: datetime, period: Period) -> float:
    total = (period.end - period.start).total_seconds() or 1.0
    share = (min(max(moment, period.start), period.end) - period.start).total_seconds() / total
    return LABEL + share * (WIDTH - LABEL - 10)


def _months(period: Period) -> list[datetime]:
    ticks: list[datetime] = []
    year, month = period.start.year, period.start.month
    while True:
        month, year = (1, year + 1) if month == 12 else (month + 1, year)
        tick = datetime(year, month, 1, tzinfo=UTC)
        if tick > period.end:
            return ticks
        ticks.append(tick)


def _axis(period: Period, top: float, bottom: float) -> list[str]:
    parts = []
    for tick in _months(period):
        x = _x(tick, period)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{top - 6}" font-size="10" text-anchor="middle" fill="#555">'
                     f'{tick:%b %Y}</text>')
    return parts


def _lane(lane: Lane, y: float, period: Period) -> list[str]:
    parts = [f'<text x="4" y="{y + 18}" font-size="12" fill="#222">{escape(lane.name[:34])}'
             f"<title>{escape(lane.name)} {escape(lane.detail)}</title></text>"]
    for span in sorted(lane.spans, key=lambda s: s.kind in NARROW):  # narrow ones drawn over the wide
        if not period.overlaps(span.start, span.end):
            continue
        x1, x2 = _x(span.start, period), _x(span.end or period.end, period)
        inset = 9 if span.kind in NARROW else 4
        parts.append(f'<rect class="span-{span.kind}" x="{x1:.1f}" y="{y + inset}" '
                     f'width="{max(x2 - x1, 2):.1f}" height="{LANE - 2 * inset}" '
                     f'fill="{SPAN_COLOURS.get(span.kind, "#bbb")}" rx="2"><title>{escape(span.label)}: '
                     f"{span.start:%Y-%m-%d %H:%M} to {f'{span.end:%Y-%m-%d %H:%M}' if span.end else 'now'}"
                     "</title></rect>")
    for mark in lane.marks:
        if not period.covers(mark.at):
            continue
        x = _x(mark.at, period)
        parts.append(f'<path class="mark-{mark.kind}" d="M{x:.1f} {y + 3} l5 6 l-5 6 l-5 -6 z" '
                     f'fill="{MARK_COLOURS.get(mark.kind, "#333")}"><title>{escape(mark.label)}: '
                     f"{mark.at:%Y-%m-%d %H:%M}</title></path>")
    return parts


def timeline(lanes: list[Lane], period: Period, name: str) -> str:
    """One lane per key or environment over the period, months marked."""
    height = AXIS + LANE * max(len(lanes), 1) + 6
    parts = [f'<svg class="timeline" id="{name}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
             f'{height}" width="100%" role="img" aria-label="{escape(name)}">', *_axis(period, AXIS, height)]
    for index, lane in enumerate(lanes):
        parts += _lane(lane, AXIS + index * LANE, period)
    if not lanes:
        parts.append(f'<text x="{LABEL}" y="{AXIS + 18}" font-size="12" fill="#777">nothing in scope</text>')
    return "".join([*parts, "</svg>"])


def coverage_chart(points: list[CoveragePoint], period: Period) -> str:
    """Environments on a customer-managed key (green) and not (grey), stacked, as steps over the period."""
    height, top = 220, AXIS
    total = max((p.on_cmk + p.not_on_cmk for p in points), default=1) or 1
    scale = (height - top - 20) / total
    base = height - 20

    def steps(value: Callable[[CoveragePoint], int]) -> str:
        path = [f"M{_x(period.start, period):.1f} {base}"]
        path += [f"H{_x(p.at, period):.1f} V{base - value(p) * scale:.1f}" for p in points]
        return " ".join([*path, f"H{_x(period.end, period):.1f} V{base} Z"])

    parts = [f'<svg class="coverage" id="coverage" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
             f'{height}" width="100%" role="img" aria-label="coverage">', *_axis(period, top, base)]
    if points:
        parts.append(f'<path d="{steps(lambda p: p.on_cmk + p.not_on_cmk)}" fill="{OFF}">'
                     "<title>not on a customer-managed key</title></path>")
        parts.append(f'<path class="on-cmk" d="{steps(lambda p: p.on_cmk)}" fill="{ON}">'
                     "<title>on a customer-managed key</title></path>")
        last = points[-1]
        parts.append(f'<text x="{LABEL - 8}" y="{base - last.on_cmk * scale:.1f}" font-size="11" '
                     f'text-anchor="end">{last.on_cmk} on CMK</text><text x="{LABEL - 8}" y="{top + 12}" '
                     f'font-size="11" text-anchor="end">{total} in all</text>')
    return "".join([*parts, "</svg>"])
