"""The package's shape: layers that import only downward, small modules, short functions.

The layers contract itself lives in pyproject.toml (``[tool.importlinter]``)
and is checked here with import-linter, so ``make test`` fails on an upward
import or an import cycle.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "hpa_classify"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80  # body lines, the docstring not counted

#: Modules allowed to import the package's own modules inside a function, and why.
LAZY_FOR_START_UP = ("cli",)


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _lint_imports() -> list[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return [str(exe)] if exe.is_file() else [shutil.which("lint-imports") or "lint-imports"]


def test_layers_contract_holds() -> None:
    """import-linter: every layer imports only downward, no package has an import cycle."""
    result = subprocess.run([*_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_files_are_small() -> None:
    big = {str(p.relative_to(ROOT)): n for p in _sources() if (n := p.read_text().count("\n")) > MAX_FILE_LINES}
    assert not big, f"files over {MAX_FILE_LINES} lines: {big}"


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        n -= first.end_lineno - first.lineno + 1  # type: ignore[operator]
    return n


def test_functions_are_short() -> None:
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _own_imports_in_functions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            module = inner.module if isinstance(inner, ast.ImportFrom) else None
            names = [a.name for a in inner.names] if isinstance(inner, ast.Import) else []
            if (module or "").startswith("hpa_classify") or any(n.startswith("hpa_classify") for n in names):
                found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return found


def test_no_function_level_import_of_the_package_outside_the_cli() -> None:
    """Inside the library, the package's own modules are imported at the top: no hidden cycles."""
    found = []
    for path in _sources():
        rel = path.relative_to(PACKAGE).parts
        if rel[0] in LAZY_FOR_START_UP:
            continue
        found += _own_imports_in_functions(path)
    assert not found, f"imports of hpa_classify inside functions: {found}"


def test_cli_lazy_imports_say_why() -> None:
    """The command line imports the package lazily for start-up speed, and says so."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "cli" / "__init__.py").read_text())) or ""
    assert "start-up" in doc and "lazy" in doc


def test_library_never_prints() -> None:
    """Only the command line prints: no print() and no rich Console below it."""
    offenders = []
    for path in _sources():
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} print()")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rich"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    assert not offenders, offenders


def test_import_of_the_package_loads_no_torch() -> None:
    """``import hpa_classify`` (and the CLI module) start fast: torch loads on first use."""
    code = "import sys, hpa_classify, hpa_classify.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api_resolves() -> None:
    import hpa_classify

    for name in hpa_classify.__all__:
        assert getattr(hpa_classify, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        hpa_classify.nonsense  # noqa: B018
