"""The docs agree with the code: the CLI reference is what the code generates, every command line
in README.md and docs/ names a command and options that exist, the README stays short."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from mnist_search.cli.app import app
from mnist_search.cli.reference import reference

ROOT = Path(__file__).resolve().parents[2]

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_cli_reference_is_generated_from_the_code():
    assert (ROOT / "docs" / "cli.md").read_text() == reference(), (
        "docs/cli.md is stale: python -m mnist_search.cli.reference > docs/cli.md"
    )


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_bytes()) <= 12 * 1024


def _command_lines(text: str) -> list[str]:
    """`mnist-search ...` invocations in code: indented blocks and fenced shell blocks, with
    their continuation lines joined."""
    lines, out = text.split("\n"), []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(?:\$ )?(mnist-search \S.*)$", line)
        if not m or line.lstrip().startswith("`"):
            continue
        cmd, j = m.group(1), i
        # a `\` continuation, or a usage line's next line of [--options]
        while j + 1 < len(lines) and (cmd.endswith("\\") or lines[j + 1].lstrip().startswith("[")):
            j += 1
            cmd = cmd.rstrip("\\") + " " + lines[j].strip()
        out.append(re.split(r"\s+#", cmd)[0].split(" && ")[0])
    return out


COMMANDS = [(p.name, c) for p in PAGES for c in _command_lines(p.read_text())]


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 10 and {p for p, _ in COMMANDS} >= {"README.md", "workers.md"}


@pytest.mark.parametrize(("page", "line"), COMMANDS)
def test_each_command_in_the_docs_exists_with_its_options(page, line):
    root = typer.main.get_command(app)
    words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
    cmd = root.get_command(
        root.make_context("mnist-search", ["--help"], resilient_parsing=True), words[1]
    )
    assert cmd is not None, f"{page}: no command {words[1]!r} in {line!r}"
    options = {o for p in cmd.params for o in [*p.opts, *getattr(p, "secondary_opts", [])]}
    for w in words[2:]:
        if w.startswith("-") and not re.fullmatch(r"-\d.*", w):
            assert w.split("=")[0] in options, f"{page}: {words[1]} has no option {w!r}: {line!r}"
