"""Properties of the package as a whole: lint-clean, fast to import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_is_clean(command):
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [ruff, *command, "src", "tests", "bench", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("code", "heavy"),
    [
        ("import mfrec", ("numba", "matplotlib", "pandas", "scipy")),
        ("import mfrec.cli", ("numba", "matplotlib", "pandas", "scipy")),
        ("import mfrec, mfrec.models", ("numba", "matplotlib")),
    ],
)
def test_import_does_not_load_heavy_modules(code, heavy):
    """`import mfrec` and `mfrec --help` stay fast: numba loads only when a kernel runs."""
    probe = f"{code}; import sys; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: room -> rooms it must never import (ARCHITECTURE.md: arrows point down only).
FORBIDDEN = {
    "kernels": {"*"},
    "data": {"models", "evaluation", "persist", "plots", "serve", "spark", "cli"},
    "persist": {"models", "evaluation", "serve", "spark", "cli"},
    "models": {"evaluation", "serve", "spark", "cli"},
    "evaluation": {"serve", "spark", "cli"},
    "serve": {"spark", "cli"},
    "spark": {"serve", "cli"},
    "plots": {"models", "evaluation", "serve", "spark", "cli"},
}


def _imports_by_room():
    """(room, imported room, file) for every import of mfrec code, lazy ones included."""
    import ast

    src = ROOT / "src" / "mfrec"
    found = []
    for path in src.rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        room = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "mfrec":
                    targets = [f"mfrec.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                bits = target.split(".")
                if bits[0] == "mfrec" and len(bits) > 1:
                    found.append((room, bits[1], path.relative_to(ROOT).as_posix()))
                elif bits[0] == "mfrec":
                    found.append((room, "mfrec", path.relative_to(ROOT).as_posix()))
    return found


def test_imports_point_down_only():
    found = _imports_by_room()
    assert any(room == "models" and to == "persist" for room, to, _ in found)  # it sees lazies
    wrong = sorted(
        f"{where}: {room} imports {to}"
        for room, to, where in found
        if room != to and ("*" in FORBIDDEN.get(room, ()) or to in FORBIDDEN.get(room, ()))
    )
    assert not wrong, "imports against the arrows of ARCHITECTURE.md:\n" + "\n".join(wrong)
