"""The package's shape, read statically: ``config/`` is a leaf every package may import, and no
function grows past what one screen shows."""

from __future__ import annotations

import ast
from pathlib import Path

from runner_utils import REPO

PACKAGE = REPO / "vaegan_runner"
MAX_FUNCTION_LINES = 80


def package_imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of each import of ``vaegan_runner`` in ``path``, lazy ones included."""
    parts = path.relative_to(REPO).with_suffix("").parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = list(parts[: len(parts) - node.level])
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            modules = [module] if node.module or not node.level else [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m.split(".")[0] == "vaegan_runner"]
    return found


def test_config_imports_nothing_of_the_package_outside_itself():
    outside = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted((PACKAGE / "config").glob("*.py"))
        for line, module in package_imports(path)
        if not module.startswith("vaegan_runner.config")
    ]
    assert outside == []


def test_the_import_reader_sees_relative_imports(tmp_path):
    """The check above would pass on a reader that finds nothing: it must see ``..training``."""
    config = sorted((PACKAGE / "config").glob("*.py"))
    assert any(package_imports(path) for path in config)  # config's own modules import each other
    seen = package_imports(PACKAGE / "training" / "loop.py")
    assert any(module.startswith("vaegan_runner.metrics") for _, module in seen), seen


def test_every_function_fits_in_80_lines():
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
