"""The tool's command lines, built in one place for the tests' subprocesses and the benchmarks."""

from __future__ import annotations

import sys
from typing import Any


def tool_command(command: str, *flags: str, **options: Any) -> list[str]:
    """``python -m mnist_search COMMAND --an-option VALUE ... FLAGS``.

    Each keyword is an option (``n_trials=3`` is ``--n-trials 3``); ``True`` gives the bare flag
    and ``None`` or ``False`` leaves the option out, so a script can pass what it was given.
    """
    argv = [sys.executable, "-m", "mnist_search", command]
    for key, value in options.items():
        if value is None or value is False:
            continue
        argv.append("--" + key.replace("_", "-"))
        if value is not True:
            argv.append(str(value))
    return [*argv, *map(str, flags)]
