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
