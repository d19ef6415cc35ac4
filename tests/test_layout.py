"""The layout shows the architecture: nothing outside a package imports its
underscore modules, and the core never imports the text or vision integrations (the
command line, which runs them, aside)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "captum_maskopt"
INTEGRATIONS = ("captum_maskopt.text", "captum_maskopt.vision")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[Tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def _python_files() -> Iterator[Path]:
    for folder in (PACKAGE, ROOT / "scripts", ROOT / "benchmarks"):
        yield from sorted(folder.rglob("*.py"))


def test_no_module_imports_an_underscore_module_of_another_package():
    offenders = []
    for path in _python_files():
        importer = _module_name(path) if path.is_relative_to(PACKAGE) else "<outside>"
        for imported, line in _imports(path):
            parts = imported.split(".")
            if parts[0] != "captum_maskopt":
                continue
            for depth, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:depth])
                    if not (importer == owner or importer.startswith(owner + ".")):
                        offenders.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
                    break
    assert not offenders, offenders


def test_the_core_does_not_import_the_integrations():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name.startswith(INTEGRATIONS) or name == "captum_maskopt.cli":
            continue
        for imported, line in _imports(path):
            if imported.startswith(INTEGRATIONS):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not offenders, offenders
