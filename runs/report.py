"""A run's after-action report: one self-contained HTML file (styles inline, charts as inline SVG, no script, no
request for anything else) that opens offline and prints, drawn from what the run page shows `reader`."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join

from runs.live import negotiations, run_page_context
from runs.models import Run
from runs.reading import Reader

WIDTH, HEIGHT, PAD = 520, 170, 36


def report_html(*, run: Run, reader: Reader) -> str:
    context = run_page_context(run=run, reader=reader)
    for turn in context["turns"]:
        turn["threads"] = [{"opening": opening, "replies": replies} for opening, replies in negotiations(turn["messages"])]
    context["charts"] = [{"label": column["label"], "svg": line_chart(
        [(row["turn"], row["cells"][index]) for row in context["metric_rows"]], context["run"].max_turns)}
        for index, column in enumerate(context["metric_series"])]
    return render_to_string("runs/report.html", context)


def line_chart(points: list[tuple[int, Any]], max_turns: int) -> str:
    """A metric over turns as an inline SVG line chart (numbers only; a turn without one leaves a gap)."""
    values = [(turn, float(value)) for turn, value in points if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if not values:
        return ""
    low, high = min(0.0, *(v for _, v in values)), max(v for _, v in values)
    span = (high - low) or 1.0
    turns = max(max_turns, 1)

    def x(turn: int) -> float:
        return PAD + (WIDTH - 2 * PAD) * ((turn - 1) / max(turns - 1, 1))

    def y(value: float) -> float:
        return HEIGHT - PAD + (value - low) / span * -(HEIGHT - 2 * PAD)

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in values)
    dots = format_html_join("", '<circle cx="{}" cy="{}" r="3"><title>turn {}: {}</title></circle>',
                            ((f"{x(t):.1f}", f"{y(v):.1f}", t, f"{v:g}") for t, v in values))
    ticks = format_html_join("", '<text x="{}" y="{}" text-anchor="middle">{}</text>',
                             ((f"{x(t):.1f}", HEIGHT - PAD + 16, t) for t in range(1, turns + 1)))
    return format_html(
        '<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" class="report-chart">'
        '<line x1="{p}" y1="{base}" x2="{right}" y2="{base}" class="axis"/>'
        '<text x="4" y="{top}">{high}</text><text x="4" y="{base}">{low}</text>{ticks}'
        '<polyline points="{line}" fill="none"/>{dots}</svg>',
        w=WIDTH, h=HEIGHT, p=PAD, right=WIDTH - PAD, base=HEIGHT - PAD, top=PAD, high=f"{high:g}", low=f"{low:g}",
        ticks=ticks, line=line, dots=dots)
