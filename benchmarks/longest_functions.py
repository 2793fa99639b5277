"""The longest functions of a source tree: lines of code (docstring excluded) and lines in all.

Usage::

    python benchmarks/longest_functions.py [obsdb] [--top 6]

Prints how many functions exceed 80 lines of code and in all, then the longest ones.  Migrations
are left out (each carries frozen copies of old code on purpose).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def function_lengths(root: Path) -> list[tuple[int, int, str]]:
    """(lines of code without the docstring, lines in all, "path:name") of every function under ``root``."""
    rows = []
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            documented = (len(body) > 1 and isinstance(body[0], ast.Expr)
                          and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str))
            start = body[1].lineno if documented else body[0].lineno
            rows.append((node.end_lineno - start + 1, node.end_lineno - node.lineno + 1,
                         f"{path.relative_to(root)}:{node.name}"))
    return sorted(rows, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1] / "obsdb"))
    parser.add_argument("--top", type=int, default=6)
    args = parser.parse_args()
    rows = function_lengths(Path(args.root))
    print(f"functions over 80 lines of code (docstring excluded): {sum(r[0] > 80 for r in rows)}; "
          f"over 80 lines in all: {sum(r[1] > 80 for r in rows)}")
    for code, total, name in rows[:args.top]:
        print(f"  {code:4d} code / {total:4d} in all  {name}")


if __name__ == "__main__":
    main()
