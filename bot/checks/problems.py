"""What a check finds: problems with their fixes, things it could not check, and what was fine."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong: which setting (or stored app), what is wrong, how to fix it."""

    setting: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.problem} Fix: {self.fix}"


@dataclass
class Report:
    """What a check found: problems, what it could not check (and why), and what was fine."""

    problems: list[Problem] = field(default_factory=list)
    unchecked: list[Problem] = field(default_factory=list)
    fine: list[str] = field(default_factory=list)

    def extend(self, other: Report) -> None:
        """Add what `other` found."""
        self.problems.extend(other.problems)
        self.unchecked.extend(other.unchecked)
        self.fine.extend(other.fine)


def format_problems(problems: Iterable[Problem], *, heading: str) -> str:
    """One message: a heading line, then one line per problem with its fix."""
    items = list(problems)
    noun = "problem" if len(items) == 1 else "problems"
    lines = [f"{heading} {len(items)} {noun} in the settings:"]
    lines.extend(f"- {p}" for p in items)
    return "\n".join(lines)


def format_unchecked(unchecked: Iterable[Problem]) -> str:
    """One message naming each setting that could not be checked, and what to do."""
    items = list(unchecked)
    noun = "setting" if len(items) == 1 else "settings"
    return "\n".join([f"Could not check {len(items)} {noun}:", *(f"- {p}" for p in items)])
