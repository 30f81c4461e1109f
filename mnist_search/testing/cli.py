"""What every refusal of bad input looks like from outside, checked in one place."""

from __future__ import annotations

from typing import Any


def one_line_error(result: Any) -> str:
    """A command's result (typer's CliRunner) refused its input as the product promises: exit
    status 2, no traceback, and one line starting 'error: ', the last on stderr (progress lines,
    such as where the data came from, may come before it). Returns that line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert not any(x.startswith("error: ") for x in lines[:-1]), result.stderr
    return lines[-1]
