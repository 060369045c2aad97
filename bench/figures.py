"""The one shape every benchmark reports its figures in, and the table `python -m bench` prints.

A benchmark script prints its own readable table, then one line `BENCH-FIGURES [...]` (JSON) that
`python -m bench` reads from its output: the figures travel between processes, never through files.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

MARK = "BENCH-FIGURES "
COMPARISONS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


@dataclass(frozen=True)
class Figure:
    """One measured figure. `target` and `comparison` ("<=", "<", ">=", ">") say what it should be, when
    anything is promised; `noise` is how much the figure moved between its own repeats (0: measured once or
    not known); `error` says why there is no value (the benchmark, or its service, failed)."""

    name: str
    value: float | None
    unit: str = ""
    target: float | None = None
    comparison: str = ""
    note: str = ""
    error: str = ""
    noise: float = 0.0

    def __post_init__(self) -> None:
        if (self.target is None) != (not self.comparison):
            raise ValueError(f"{self.name}: a target needs a comparison and a comparison a target")
        if self.comparison and self.comparison not in COMPARISONS:
            raise ValueError(f"{self.name}: comparison {self.comparison!r} is not one of {', '.join(COMPARISONS)}")

    @property
    def ratio(self) -> float | None:
        """Value ÷ target: ≤ 1 is good for a ceiling, ≥ 1 for a floor."""
        if self.value is None or not self.target:
            return None
        return self.value / self.target

    @property
    def passed(self) -> bool | None:
        """None when nothing is promised; False when the figure could not be measured."""
        if self.target is None:
            return None
        if self.value is None:
            return False
        return COMPARISONS[self.comparison](self.value, self.target)

    @property
    def missed_beyond_noise(self) -> bool:
        """A miss the figure's own noise cannot explain: even moved by its noise towards the target it misses."""
        if self.passed is not False:
            return False
        if self.value is None:
            return True
        towards = -self.noise if self.comparison in ("<=", "<") else self.noise
        return not COMPARISONS[self.comparison](self.value + towards, self.target)

    def as_json(self) -> dict:
        ratio = self.ratio
        return {**asdict(self), "ratio": None if ratio is None else round(ratio, 3), "passed": self.passed}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def p95_noise(values: list[float]) -> float:
    """The noise of a p95 taken once: half the difference between the p95s of the first and the second half of
    the samples, in the order they were taken."""
    if len(values) < 4:
        return 0.0
    half = len(values) // 2
    return abs(p95(values[:half]) - p95(values[half:])) / 2


def failed(name: str, error: str, unit: str = "", target: float | None = None, comparison: str = "") -> Figure:
    return Figure(name, None, unit, target, comparison, error=error)


def emit(figures: Iterable[Figure]) -> None:
    """Print the figures for `python -m bench` (one line, after the script's own table)."""
    print(MARK + json.dumps([asdict(f) for f in figures]), flush=True)


def parse(output: str) -> list[Figure]:
    """The figures a benchmark printed; ValueError when it printed none."""
    names = {f.name for f in fields(Figure)}
    for line in reversed(output.splitlines()):
        if line.startswith(MARK):
            return [Figure(**{k: v for k, v in item.items() if k in names}) for item in json.loads(line[len(MARK):])]
    raise ValueError("the benchmark printed no figures")


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value):
        return f"{int(value):,}".replace(",", " ")
    if abs(value) >= 100:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(figures: Iterable[Figure]) -> str:
    """Figure | value | target | ratio | verdict, one line each; a failed figure shows its error."""
    head = ("figure", "value", "target", "ratio", "")
    rows = [head]
    for f in figures:
        unit = f" {f.unit}" if f.unit else ""
        value = f"{number(f.value)}{unit}" if f.error == "" else "failed"
        if f.noise and not f.error:
            value = f"{number(f.value)} ± {number(f.noise)}{unit}"
        target = f"{f.comparison} {number(f.target)}{unit}" if f.target is not None else ""
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else ""
        verdict = {True: "ok", False: "MISSED" if f.missed_beyond_noise else "missed within noise", None: ""}[f.passed]
        if f.error:
            verdict = f"FAILED: {f.error}"
        elif f.note:
            verdict = f"{verdict}  ({f.note})" if verdict else f"({f.note})"
        rows.append((f.name, value, target, ratio, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    aligned = [" | ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:4], widths[1:])), r[4]]).rstrip()
               for r in rows]
    aligned.insert(1, "-+-".join("-" * w for w in [*widths, 7]))
    return "\n".join(aligned)


def markdown_table(figures: Iterable[Figure]) -> str:
    """The table of docs/PERFORMANCE.md: figure, value (± its noise), target, ratio, verdict."""
    rows = ["| figure | value | target | ratio | |", "| --- | ---: | ---: | ---: | --- |"]
    for f in figures:
        unit = f" {f.unit}" if f.unit else ""
        value = "failed" if f.error else f"{number(f.value)}{f' ± {number(f.noise)}' if f.noise else ''}{unit}"
        sign = {"<=": "≤", ">=": "≥"}.get(f.comparison, f.comparison)
        target = f"{sign} {number(f.target)}{unit}" if f.target is not None else ""
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else ""
        verdict = {True: "met", False: "MISSED" if f.missed_beyond_noise else "missed within noise", None: ""}[f.passed]
        detail = f.error or f.note
        said = "; ".join(part for part in (verdict, detail) if part)
        rows.append(f"| {f.name} | {value} | {target} | {ratio} | {said} |")
    return "\n".join(rows)


def report(title: str, figures: list[Figure]) -> None:
    """What each script prints when it ends: its title, its table, the machine-readable line."""
    print(title)
    print(table(figures))
    emit(figures)
