"""Results of a benchmark scenario and how they are written to docs/benchmarks.md.

Each scenario measures eventlog and its baseline in the same run and reports
the ratio: the machines are shared and noisy, absolute figures drift.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Figure", "Section", "write_section"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass
class Figure:
    """One measured case: eventlog's rate next to its baseline's."""

    case: str
    value: float
    baseline: float
    unit: str = "events/s"
    target: float | None = None  # minimum ratio asked for, if any
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    def row(self) -> str:
        target = "" if self.target is None else f"≥ {self.target:g}×"
        verdict = ""
        if self.target is not None:
            verdict = "met" if self.ratio >= self.target else "**not met**"
        return (
            f"| {self.case} | {self.value:,.0f} {self.unit} | {self.baseline:,.0f} {self.unit} "
            f"| {self.ratio:.2f}× | {target} {verdict} | {self.note} |"
        )


@dataclass
class Section:
    """A scenario's results: a title, its conditions, its figures, extra lines."""

    key: str
    title: str
    conditions: str
    figures: list[Figure] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def render(self) -> str:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"<!-- bench:{self.key} -->",
            f"## {self.title}",
            "",
            f"Measured {when} on {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}. {self.conditions}",
            "",
            *(
                [
                    "| case | eventlog | baseline | ratio | target | notes |",
                    "|---|---|---|---|---|---|",
                    *(f.row() for f in self.figures),
                    "",
                ]
                if self.figures
                else []
            ),
            *self.extra,
            f"<!-- /bench:{self.key} -->",
        ]
        return "\n".join(lines)

    def print(self) -> None:
        print(self.render())


def write_section(section: Section, doc: Path = DOC) -> None:
    """Replace (or add) the scenario's section in docs/benchmarks.md."""
    text = doc.read_text() if doc.exists() else _HEADER
    block = section.render()
    pattern = re.compile(
        rf"<!-- bench:{re.escape(section.key)} -->.*?<!-- /bench:{re.escape(section.key)} -->",
        re.S,
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)


_HEADER = """# Benchmarks

Written by `just bench` (`python -m bench [scenario ...]`). Every figure sits
next to a baseline measured in the same run on the same machine, and the ratio
is what matters: these machines are shared and noisy, absolute figures drift.
See the conditions of each scenario below.
"""
