"""Size check for `make lint`: no module over 600 lines, no function over 80, in digitize/, dags/ and plugins/.

Long modules and functions hide more than one concern; the limits keep each file readable in one
sitting. A few things must stay long: each has an entry in scripts/size_allowlist.txt with its own
limit and the reason. An entry that is no longer needed (the file or function is gone, or now within
the usual limit) fails the check too, so the list stays short.

Usage: python scripts/check_sizes.py [--root DIR] [--allowlist FILE]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODULE_LIMIT = 600
FUNCTION_LIMIT = 80
CHECKED_FOLDERS = ("digitize", "dags", "plugins")
REPO_ROOT = Path(__file__).resolve().parent.parent
ALLOWLIST_NAME = "scripts/size_allowlist.txt"


@dataclass(frozen=True)
class Measure:
    """One module (`path`) or function (`path::Class.method`) and its length in lines."""

    target: str
    lines: int

    @property
    def limit(self) -> int:
        return FUNCTION_LIMIT if "::" in self.target else MODULE_LIMIT

    @property
    def kind(self) -> str:
        return "function" if "::" in self.target else "module"


@dataclass(frozen=True)
class Allowance:
    """An allow-list entry: the target may grow up to `limit` lines, for `reason`."""

    target: str
    limit: int
    reason: str
    line_number: int


def python_files(root: Path) -> Iterator[Path]:
    for folder in CHECKED_FOLDERS:
        if (root / folder).is_dir():
            yield from sorted(p for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts)


def measure_file(root: Path, path: Path) -> Iterator[Measure]:
    """The module's length, then every function's (def line to last line; an outer one includes its inner ones)."""
    relative = path.relative_to(root).as_posix()
    text = path.read_text(encoding="utf-8")
    yield Measure(relative, len(text.splitlines()))

    def visit(node: ast.AST, prefix: str) -> Iterator[Measure]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield Measure(f"{relative}::{name}", (child.end_lineno or child.lineno) - child.lineno + 1)
                yield from visit(child, f"{name}.")
            else:
                yield from visit(child, prefix)

    yield from visit(ast.parse(text, filename=relative), "")


def read_allowlist(path: Path) -> tuple[dict[str, Allowance], list[str]]:
    """Entries are `<path>[::<function>] <limit> <why it must stay long>`; `#` starts a comment line."""
    allowances: dict[str, Allowance] = {}
    problems: list[str] = []
    if not path.exists():
        return allowances, problems
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path.name}:{number}"
        fields = line.split(maxsplit=2)
        if len(fields) < 3 or not fields[1].isdigit():
            problems.append(f"{where}: expected '<path>[::<function>] <limit> <reason>', got {line!r}")
            continue
        target, limit, reason = fields[0], int(fields[1]), fields[2]
        if target in allowances:
            problems.append(f"{where}: {target} is listed twice")
            continue
        allowances[target] = Allowance(target, limit, reason, number)
    return allowances, problems


def check(root: Path, allowlist: Path) -> list[str]:
    """Every problem found, as a sentence naming the file or function, its size and its limit."""
    allowances, problems = read_allowlist(allowlist)
    measured: set[str] = set()
    for path in python_files(root):
        for measure in measure_file(root, path):
            measured.add(measure.target)
            allowance = allowances.get(measure.target)
            if allowance is None and measure.lines > measure.limit:
                problems.append(
                    f"{measure.target}: {measure.kind} of {measure.lines} lines, over the limit of {measure.limit}"
                    f" (split it, or add it to {allowlist.name} with the reason it must stay long)"
                )
            elif allowance is not None and measure.lines > allowance.limit:
                problems.append(
                    f"{measure.target}: {measure.kind} of {measure.lines} lines, over its allow-listed limit of"
                    f" {allowance.limit} ({allowlist.name}:{allowance.line_number})"
                )
            elif allowance is not None and measure.lines <= measure.limit:
                problems.append(
                    f"{allowlist.name}:{allowance.line_number}: stale entry, {measure.target} is {measure.lines}"
                    f" lines, within the usual limit of {measure.limit}: remove the entry"
                )
    for allowance in allowances.values():
        if allowance.target not in measured:
            problems.append(
                f"{allowlist.name}:{allowance.line_number}: stale entry, no module or function {allowance.target}"
                " in digitize/, dags/ or plugins/: remove the entry"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository to check (default: this one)")
    parser.add_argument("--allowlist", type=Path, help=f"default: <root>/{ALLOWLIST_NAME}")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    allowlist = args.allowlist or root / ALLOWLIST_NAME
    problems = check(root, allowlist)
    for problem in problems:
        print(problem)
    if problems:
        print(f"size check failed: {len(problems)} problem(s); limits are {MODULE_LIMIT} lines per module"
              f" and {FUNCTION_LIMIT} per function in {', '.join(CHECKED_FOLDERS)}")
        return 1
    print(f"sizes: every module within {MODULE_LIMIT} lines and every function within {FUNCTION_LIMIT},"
          f" or within its allow-listed limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
