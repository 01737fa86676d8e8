"""The README's Python snippets run as written, in order, on ML-100K."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.mark.realdata
@pytest.mark.slow
def test_readme_python_snippets_run(ml100k_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MFREC_DATA_DIR", str(ml100k_dir.parent))
    monkeypatch.chdir(tmp_path)  # the tour saves ml100k.mfrec in the working directory
    blocks = python_blocks()
    # The Bayesian MF block (its ml-100k preset draws 800 Gibbs samples: tens of seconds,
    # minutes on a busy machine) is left to bench/frontier.py, which fits the same preset.
    bayes = [b for b in blocks if "BayesianMF(" in b]
    assert len(bayes) == 1
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UnknownIdWarning on u1.test is expected
        for block in blocks:
            if block not in bayes:
                exec(compile(block, str(README), "exec"), namespace)
    model, fold = namespace["model"], namespace["fold"]
    assert len(fold.train) == 80_000
    assert model.users_.lookup([10_001, 10_002]).min() >= 0  # partial_fit added new_ratings
    split = namespace["split"]
    assert len(split.train) + len(split.test) == 12
    assert (tmp_path / "ml100k.mfrec").is_file()
