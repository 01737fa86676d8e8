"""The default model: one named constant, used by the CLI, agreeing with the panel's choice.

``bench/defaults.py`` chooses the default model on the evaluation panel by a stated rule
and records the choice in ``bench/results/defaults.json``; ``mfrec.models.DEFAULT_MODEL``
is what ``mfrec train`` / ``mfrec evaluate`` / ``mfrec demo`` fit without ``--model``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from mfrec.models import DEFAULT_MODEL, MODELS

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "bench" / "results" / "defaults.json"


def test_default_model_is_a_rating_model():
    assert DEFAULT_MODEL in MODELS
    assert MODELS[DEFAULT_MODEL].predicts_ratings


@pytest.mark.skipif(not RESULT.exists(), reason="bench/results/defaults.json not written yet")
def test_default_model_agrees_with_the_panel():
    data = json.loads(RESULT.read_text())
    chosen = data["default_choice"]["model"]
    assert not data.get("partial"), "bench/results/defaults.json must be a full panel run"
    assert chosen == DEFAULT_MODEL, (
        f"bench/defaults.py chose {chosen!r} on the panel, but mfrec.models.DEFAULT_MODEL is "
        f"{DEFAULT_MODEL!r}: change the constant (src/mfrec/_defaults.py) and docs/defaults.md"
    )


def test_cli_commands_default_to_the_constant():
    from mfrec.cli import main

    for command in ("train", "evaluate", "demo"):
        option = next(p for p in main.commands[command].params if p.name == "model_name")
        assert option.default == DEFAULT_MODEL, command


@pytest.fixture(scope="module")
def panel():
    """bench/defaults.py as a module (bench/ on the path for its ``_common`` import)."""
    bench = str(ROOT / "bench")
    sys.path.insert(0, bench)
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_defaults", ROOT / "bench" / "defaults.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(bench)
    return module


def _standing(fit_s, ratios):
    """A summary entry as bench/defaults.summarise writes it."""
    return {
        "fit_s": fit_s,
        "ratio": dict(enumerate(ratios)),
        "mean_ratio": sum(ratios) / len(ratios),
        "worst_ratio": max(ratios),
        "mean_rank": 1.0,
    }


def test_rule_puts_time_then_robustness_then_accuracy(panel):
    summary = {
        "biased-mf": _standing(10.0, [0.95, 0.99]),
        # The most accurate, but over the time budget.
        "bayes-mf": _standing(10.0 * panel.TIME_BUDGET + 1, [0.90, 0.92]),
        # More accurate on average than biased-mf, but worse than the bias baseline once.
        "funk-svd": _standing(12.0, [0.90, 1.02]),
        # Robust and a little more accurate than biased-mf: the choice.
        "svdpp": _standing(20.0, [0.94, 0.99]),
        "bias": _standing(1.0, [1.0, 1.0]),
        "global-mean": _standing(0.0, [1.2, 1.3]),
    }
    choice = panel.choose_default(summary)
    assert choice["model"] == "svdpp"
    assert choice["over_time_budget"] == ["bayes-mf"]
    assert choice["not_robust"] == ["funk-svd"]
    # The baselines are never candidates, even when they are the robust ones.
    summary["svdpp"] = _standing(20.0, [0.94, 1.05])
    summary["biased-mf"] = _standing(10.0, [0.95, 1.05])
    assert panel.choose_default(summary)["model"] == "funk-svd"


def test_targets_list_every_failure(panel):
    def cell(rmse):
        return {"rmse": rmse, "fit_s": 1.0}

    names = [
        "biased-mf",
        "svdpp",
        "als",
        "bayes-mf",
        "bias",
        "global-mean",
        "surprise-svd",
        "cornac-mf",
        "nmf",
    ]
    good = dict(zip(names, [0.90, 0.91, 0.92, 0.89, 0.95, 1.10, 0.94, 0.93, 0.97], strict=True))
    bad = dict(good, als=0.96, nmf=1.15, **{"cornac-mf": 0.89, "surprise-svd": 1.2})
    results = {
        "a": {n: cell(v) for n, v in good.items()},
        "b": {n: cell(v) for n, v in bad.items()},
    }
    summary = panel.summarise(results, names)
    out = panel.grade_targets(results, summary, "biased-mf")
    graded = {t["target"]: t for t in out["targets"]}
    assert graded["biased-mf beats bias on every set"]["pass"]
    als = graded["als beats bias on every set"]
    assert not als["pass"] and [(f["set"], f["row"]) for f in als["failing"]] == [("b", "als")]
    assert not graded["biased-mf beats cornac-mf on every set"]["pass"]
    # The target grades mfrec's models; a peer below the global mean is a note beside it.
    worse = graded["no mfrec model worse than the global mean on any set"]
    assert not worse["pass"] and [(f["set"], f["row"]) for f in worse["failing"]] == [("b", "nmf")]
    (note,) = out["notes"]
    assert [(f["set"], f["row"]) for f in note["rows"]] == [("b", "surprise-svd")]
    mean = graded["panel mean RMSE: biased-mf at least 0.01 better than surprise-svd"]
    assert mean["pass"] and mean["margin"] == pytest.approx((0.94 + 1.2) / 2 - 0.90)
    assert summary["als"]["rank"] == {"a": 4, "b": 6}
    assert summary["bias"]["mean_ratio"] == 1.0
