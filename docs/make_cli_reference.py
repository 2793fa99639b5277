"""Write docs/cli-reference.md from the commands' own help: ``python docs/make_cli_reference.py``.

It walks obsdb's Typer application as click sees it (every command and sub-command, every argument and
option with its help, choices, default and environment variable), so the reference says what
``obsdb COMMAND --help`` says.  ``--check`` exits 1 when the checked-in file differs (tests/project/test_docs.py
and .ci/run use it).
"""

from __future__ import annotations

import sys
from pathlib import Path


OUT = Path(__file__).resolve().parent / "cli-reference.md"
"""The generated page."""


def _clean(text: str | None) -> str:
    """One paragraph per blank-line-separated block, with the wrapping of the source undone."""
    if not text:
        return ""
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


# Duck-typed: typer >= 0.28 carries its own copy of click, whose classes are not click's.


def _is_option(param) -> bool:
    return getattr(param, "param_type_name", None) == "option"


def _param_row(param) -> str:
    if _is_option(param):
        names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
        if not param.is_flag and param.type.name != "boolean":
            metavar = "[" + "|".join(map(str, param.type.choices)) + "]" if hasattr(param.type, "choices") else param.type.name.upper().replace(" RANGE", "")
            names += f" {metavar}".replace("|", "\\|")
    else:
        names = f"`{param.human_readable_name}`"
    help_text = _clean(getattr(param, "help", None) or "")
    extra = []
    if _is_option(param):
        if param.multiple:
            extra.append("repeatable")
        if param.envvar:
            extra.append(f"env `{param.envvar}`")
        default = param.default
        if (default not in (None, False, (), []) and not callable(default) and param.show_default is not False
                and not param.is_flag):
            extra.append(f"default `{getattr(default, 'value', default)}`")
    elif param.required:
        extra.append("required")
    if extra:
        help_text = (help_text + " " if help_text else "") + f"({'; '.join(extra)})"
    help_text = help_text.replace("|", "\\|")
    return f"| {names} | {help_text} |"


def _command(name: str, command, parent, lines: list[str], depth: int) -> None:
    ctx = command.context_class(command, info_name=name, parent=parent)
    lines += [f"{'#' * depth} `{ctx.command_path}`", ""]
    lines += ["```text", command.get_usage(ctx).strip(), "```", ""]
    if command.help:
        lines += [_clean(command.help), ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        lines += ["| argument / option | meaning |", "|---|---|"]
        lines += [_param_row(p) for p in params]
        lines.append("| `--help`, `-h` | Show the help and exit. |")
        lines.append("")
    if hasattr(command, "list_commands"):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                _command(sub_name, sub, ctx, lines, depth + 1)


def render() -> str:
    """The reference page as Markdown."""
    import typer.main

    from obsdb.cli.app import app

    root = typer.main.get_command(app)
    lines = ["# CLI reference", "",
             "Generated from the commands' help by `python docs/make_cli_reference.py`; do not edit by hand "
             "(a test fails when this page is not what the script prints).", ""]
    _command("obsdb", root, None, lines, 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT}: not fresh; run `python docs/make_cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
