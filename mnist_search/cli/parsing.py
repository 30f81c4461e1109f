"""How the command line parses and shows itself: every parser error as one line with exit status
2 (as every other bad input), and --help that shows choices, not <str>, and no <bool> on flags."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup, TyperOption
from typer.exceptions import TyperException

from mnist_search.errors import ConfigError, UsageError


def _help_type(self: TyperOption, ctx: Any) -> str | None:
    """The type column of --help: nothing for an on/off flag (typer shows <bool>), the choices
    for an option that declares them as its metavar (typer shows <str>). The values themselves
    are still checked by the config, whose errors name the valid ones."""
    if self.is_flag:
        return None
    return f"<{self.metavar}>" if self.metavar else _typer_help_type(self, ctx)


_typer_help_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _help_type  # type: ignore[method-assign]


class OneLineErrors(TyperGroup):
    """Option values the parser itself refuses (not a number, no such option) also end as one
    line and exit status 2, like every other bad input."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except TyperException as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                e.show()  # the help text, as for --help
            else:
                typer.echo(f"error: {' '.join(e.format_message().split())}", err=True)
            code = e.exit_code
        except UsageError as e:
            # Raised by the library call a command makes; shown here, once the command's live
            # progress display has closed, as one line.
            typer.echo(f"error: {e.as_flag() if isinstance(e, ConfigError) else e}", err=True)
            code = 2
        except typer.Abort:
            typer.echo("aborted", err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code
