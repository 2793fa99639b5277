"""The layers of docs/architecture.md hold: the import contracts in pyproject.toml, and what they cannot say."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept(capsys):
    """`lint-imports` (import-linter): presentation > front door > steps > storage > imaging, the steps
    hold no SQL imports, and no import cycles.  Its report is printed when a contract breaks."""
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0, capsys.readouterr().out


def test_pipeline_steps_open_no_sessions():
    """The steps ask their stores (obsdb.catalog.stores): no pipeline module opens a session itself."""
    import obsdb.pipeline

    offenders = []
    for path in sorted(Path(obsdb.pipeline.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "session":
                offenders.append(f"{path.name}:{node.lineno}: opens a catalog session")
    assert offenders == []


def test_migrations_import_nothing_of_obsdb_that_can_change():
    """Each revision carries the code it needs, frozen; only env.py reads the models' metadata."""
    offenders = []
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}:{node.lineno}: imports {n}" for n in names if n.split(".")[0] == "obsdb"]
    assert offenders == []
