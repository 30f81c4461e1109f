"""The command-line reference, generated from the commands' own declarations (help strings,
types, defaults), so it cannot drift from ``--help``:

    python -m mnist_search.cli.reference > docs/cli.md
"""

from __future__ import annotations

import typer
import typer.core

from mnist_search.cli.app import app


def _default(p) -> str:
    if getattr(p, "is_flag", False) and getattr(p, "secondary_opts", None):
        return "by device" if p.default is None else ("on" if p.default else "off")
    if p.default is None or p.default == () or getattr(p, "is_flag", False) and not p.default:
        return ""
    return f"`{p.default}`"


def _names(p) -> str:
    names = [*p.opts, *getattr(p, "secondary_opts", [])]
    return ", ".join(f"`{n}`" for n in names)


def reference() -> str:
    root = typer.main.get_command(app)
    ctx = root.make_context("mnist-search", [], resilient_parsing=True)
    out = [
        "# Command-line reference",
        "",
        "Generated from the code by `python -m mnist_search.cli.reference > docs/cli.md`; "
        "`mnist-search COMMAND --help` says the same.",
        "",
    ]
    assert isinstance(root, typer.core.TyperGroup)
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        out += [f"## `mnist-search {name}`", "", (cmd.help or "").strip(), ""]
        out += ["| option | default | meaning |", "|---|---|---|"]
        for p in cmd.params:
            if (
                p.param_type_name == "option"
                and not getattr(p, "hidden", False)
                and p.name != "help"
            ):
                text = " ".join((getattr(p, "help", None) or "").split()).replace("|", "\\|")
                out.append(f"| {_names(p)} | {_default(p)} | {text} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference(), end="")
