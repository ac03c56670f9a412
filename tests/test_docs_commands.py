"""Every `pushops ...` command the README and docs/ show is one the command line takes.

A command is read from a code span or a line of a code block (`docker run ... pushops db
upgrade` too): its subcommand words (lower case; `a|b` and `a | b` name alternatives) must be
accepted, and each `--option` it shows must be in that subcommand's --help.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from bot.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WORD = re.compile(r"[a-z][a-z0-9-]*")
# Text that starts with "pushops" but names no command: docs/audit.md's key-derivation label.
NOT_COMMANDS = {"audit log mac v1"}


def _snippets(text: str) -> list[str]:
    """Code spans and code block lines that run `pushops`, each cut before its description."""
    found: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        pieces = [line] if in_block else re.findall(r"`([^`]+)`", line)
        for piece in pieces:
            # Not the value of a short option (`pg_dump -U pushops`, `docker build -t pushops`).
            for match in re.finditer(r"(?:^|[\s;&|(])(?<!-[A-Za-z] )pushops((?: +\S+)*)", piece):
                found.append(re.split(r"\s{2,}", match.group(1).strip())[0])
    return found


def _commands() -> list[tuple[str, str]]:
    """(document, the words after `pushops`) for every command shown."""
    commands: dict[tuple[str, str], None] = {}
    for document in DOCUMENTS:
        for snippet in _snippets(document.read_text()):
            if WORD.match(snippet) and snippet not in NOT_COMMANDS:
                commands[(document.name, snippet)] = None
    return list(commands)


def _paths(snippet: str) -> tuple[list[list[str]], list[str]]:
    """The subcommand paths a snippet names (one per alternative) and the options it shows."""
    tokens = snippet.replace(" | ", "|").split()
    words: list[list[str]] = []
    for token in tokens:
        choices = token.split("|")
        if not all(WORD.fullmatch(choice) for choice in choices) or len(words) == 2:
            break
        words.append(choices)
    options = re.findall(r"--[a-z][a-z0-9-]*", snippet)
    if not words:
        return [[]], options
    paths = [[first] for first in words[0]]
    if len(words) > 1:
        paths = [[*path, second] for path in paths for second in words[1]]
    return paths, options


def _help(path: list[str]) -> tuple[int, str]:
    """`pushops PATH --help`: its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            build_parser(path[0] if path else None).parse_args([*path, "--help"])
        except SystemExit as e:
            return int(e.code or 0), out.getvalue() + err.getvalue()
    return 0, out.getvalue()


COMMANDS = _commands()


def test_the_documents_show_commands():
    documents = {document for document, _ in COMMANDS}

    assert {"README.md", "operations.md"} <= documents


@pytest.mark.parametrize(("document", "snippet"), COMMANDS, ids=[f"{d}: {s}" for d, s in COMMANDS])
def test_each_command_shown_exists(document, snippet):
    paths, options = _paths(snippet)
    helps = []
    for path in paths:
        code, text = _help(path)
        assert code == 0, f"{document}: `pushops {' '.join(path)}` is no command:\n{text}"
        helps.append(text)
    missing = [option for option in options if not any(option in text for text in helps)]
    assert not missing, f"{document}: `pushops {snippet}` shows options it does not take: {missing}"


def _metric_names() -> set[str]:
    """Every series name the metrics registry exposes (a labelled one before its first use
    too: a counter's `_total`, a histogram's `_bucket`, `_sum` and `_count`)."""
    from bot.metrics import Metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def test_every_metric_the_operators_guide_names_exists():
    named = set(re.findall(r"\bpushops_[a-z_]+", (ROOT / "docs" / "operations.md").read_text()))
    known = _metric_names()

    assert named, "docs/operations.md names no metric to alert on"
    assert not named - known, f"docs/operations.md names metrics that do not exist: {named - known}"
