"""The docs: the CLI reference is fresh, and every `obsdb` command shown in the docs parses.

Parsing goes through click itself (the same parser `obsdb` uses), so an option a command does not have
(`obsdb serve --db X`: "No such option: --db") or a missing argument fails here.  The commands are run
for real by tests/cli/test_readme_commands.py (the README) and tests/cli/test_readme_plan.py (docs/plan.md).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


def test_the_cli_reference_is_fresh():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "make_cli_reference.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def shown_commands() -> list[tuple[str, str]]:
    """(page, command line) for every `obsdb ...` line of a bash block in the README and docs/."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                for part in re.split(r"&&|\|", line.split(" #", 1)[0]):
                    part = part.strip()
                    if part.startswith("obsdb "):
                        found.append((page.name, part))
    return found


def _parse(words: list[str]) -> None:
    import typer.main

    from obsdb.cli.app import app

    command = typer.main.get_command(app)
    ctx = None
    name = "obsdb"
    while True:
        ctx = command.make_context(name, list(words), parent=ctx)
        if not hasattr(command, "list_commands"):
            return
        rest = [*ctx._protected_args, *ctx.args] if hasattr(ctx, "_protected_args") else [*ctx.protected_args,
                                                                                              *ctx.args]
        if not rest:
            return
        name, words = rest[0], rest[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command {name!r}"
        command = sub


@pytest.mark.parametrize("page, line", shown_commands())
def test_every_documented_command_parses(page, line):
    import typer.main

    from obsdb.cli.app import app

    # typer >= 0.28 carries its own copy of click: take the exceptions from the module its commands use.
    core = sys.modules[type(typer.main.get_command(app)).__mro__[1].__module__]
    try:
        _parse(shlex.split(line)[1:])
    except core.Exit:
        pass                        # --help, --version
    except core.UsageError as error:
        pytest.fail(f"{page}: `{line}`: {error.format_message()}")


def test_the_python_page_shows_the_example_the_archive_test_runs():
    """docs/python.md's example is the README's, which tests/api/test_archive.py runs as written."""
    def block(text: str) -> str:
        return re.search(r"```python\n(.*?)```", text, re.S).group(1)

    readme = (ROOT / "README.md").read_text().split("## From Python", 1)[1]
    assert block((ROOT / "docs" / "python.md").read_text()) == block(readme)


def inline_commands() -> list[tuple[str, str]]:
    """(page, text) for every inline `obsdb ...` of the README and docs/ without placeholders (FRAME, ...)."""
    found = []
    for page in PAGES:
        prose = re.sub(r"```.*?```", "", page.read_text(), flags=re.S).replace("\n", " ")
        for span in re.findall(r"`(obsdb [^`]+)`", prose):
            if not re.search(r"\b[A-Z]{2,}\b|\.\.\.|\[|\|", span):
                found.append((page.name, span))
    return found


def test_every_option_named_in_the_prose_exists():
    """Inline commands in the text name real commands and options (they may leave out arguments)."""
    import typer.main

    from obsdb.cli.app import app

    core = sys.modules[type(typer.main.get_command(app)).__mro__[1].__module__]
    spans = inline_commands()
    assert len(spans) > 50
    wrong = []
    for page, span in spans:
        try:
            _parse(shlex.split(span)[1:])
        except (core.Exit, core.MissingParameter, core.NoArgsIsHelpError):
            pass                    # `obsdb tag` named in a sentence, without its frames
        except (core.UsageError, AssertionError) as error:
            wrong.append(f"{page}: `{span}`: {error.format_message() if isinstance(error, core.UsageError) else error}")
    assert not wrong, "\n".join(wrong)
