"""What the tests and benchmarks share, beside the product: a throwaway PostgreSQL server, the
load test, the tool's command lines, a child process that hears Ctrl-C, and headless Chromium.

Nothing here is imported by the product itself.
"""

from .browser import chromium, dump_dom, screenshot
from .cli import one_line_error
from .commands import tool_command
from .load import check, run_load
from .postgres import PgServerMissing, throwaway_postgres
from .processes import hear_stops, log_spawns
from .workers import start_worker, study_with_a_slow_trial, wait_for_running

__all__ = [
    "PgServerMissing",
    "check",
    "chromium",
    "dump_dom",
    "hear_stops",
    "log_spawns",
    "one_line_error",
    "run_load",
    "screenshot",
    "start_worker",
    "study_with_a_slow_trial",
    "throwaway_postgres",
    "tool_command",
    "wait_for_running",
]
