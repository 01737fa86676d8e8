"""The examples/ scripts, one per notebook, run with small settings: what they print and
return must be the notebook's job done right, so that they cannot rot."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, argv: list[str], capsys) -> tuple[dict, str]:
    spec = importlib.util.spec_from_file_location(f"example_{name[:3]}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(argv)
    return result, capsys.readouterr().out


def test_every_example_has_its_output_in_the_docstring():
    for path in sorted(EXAMPLES.glob("[0-9][0-9][0-9]_*.py")):
        doc = " ".join(path.read_text().split('"""')[1].split())
        assert "Output of an actual run" in doc and ":: ... " not in doc, path.name


def test_000_toy_matrix_reconstructed(capsys):
    result, out = run("000_toy_sgd.py", ["--epochs", "1500", "--every", "500"], capsys)
    R = np.array([[5, 3, 0, 1], [4, 0, 0, 1], [1, 1, 0, 5], [1, 0, 0, 4], [0, 1, 5, 4]])
    predicted = result["predicted"]
    assert predicted.shape == (5, 4)
    assert np.abs(predicted - R)[R > 0].max() < 0.15, "known ratings are reproduced"
    assert result["worst_known_error"] == pytest.approx(np.abs(predicted - R)[R > 0].max())
    losses = re.findall(r"Epoch +(\d+): squared error = ([\d.]+)", out)
    assert [int(e) for e, _ in losses] == [1, 500, 1000, 1500]
    assert float(losses[-1][1]) < 0.05 * float(losses[0][1]), "the loss falls"
    assert str(np.round(predicted, 2)) in out


def test_001_three_ways_side_by_side(capsys):
    result, out = run("001_three_ways.py", [], capsys)
    M = np.array([[5, 3, 0, 2, 1], [4, 0, 0, 2, 1], [1, 3, 1, 0, 5], [1, 0, 2, 0, 4]])
    # The notebook's full SVD, reproduced (float32 ratings: a few ULPs of 5).
    assert result["exact_error"] < 1e-5
    np.testing.assert_allclose(
        result["singular_values"], scipy.linalg.svd(M, compute_uv=False), rtol=1e-5
    )
    for name in ("TruncatedSVD", "NMF", "GradientDescentMF"):
        assert f"{name} (2 factors): RMSE on the known ratings" in out
        predicted = result[name]["predicted"]
        assert predicted.shape == (4, 5) and np.isfinite(predicted).all()
        assert result[name]["rmse"] < 0.4, name
        # Unknown cells are predicted as ratings, not reproduced as the notebook's zeros.
        assert (predicted[M == 0] > 0.3).all(), name
    assert (result["NMF"]["predicted"] >= 0).all()


def test_002_derivation_and_6x4_matrix(capsys):
    result, out = run("002_toy_sgd_derivation.py", ["--epochs", "1000"], capsys)
    assert result["step_difference"] < 1e-12, "mfrec's step is the derived update"
    completed = result["completed"]
    assert completed.shape == (6, 4) and completed.index.name == "user"
    R = np.array(
        [[5, 3, 0, 1], [4, 0, 0, 1], [1, 1, 0, 5], [1, 0, 0, 4], [0, 1, 5, 4], [2, 1, 3, 0]]
    )
    assert np.abs(completed.to_numpy() - R)[R > 0].max() < 0.5
    assert "Reconstructed matrix" in out and "Epoch  1000: squared error" in out


def test_003_planted_adam_top15(capsys):
    result, out = run("003_planted_adam.py", ["--epochs", "150"], capsys)
    ratings = result["ratings"]
    assert (ratings.n_items, ratings.n_users) == (100, 30)
    assert 0.45 < len(ratings) / 3000 < 0.55, "half the cells are hidden"
    assert result["rmse_complete"] < 0.9 * result["rmse_item_mean"], "beats the item means"
    assert result["overlap"] >= 8, "the top-15 finds the planted favourites"
    choices = re.findall(r"Choice (\d+) : (Item_\d+)", out)
    assert [int(c) for c, _ in choices] == list(range(1, 16))
    rated = set(ratings.to_frame().query("user == 'User_11'")["item"])
    assert rated.isdisjoint(item for _, item in choices), "only unrated items"
    assert [item for _, item in choices] == result["top15"]


def test_004_movielens(ml100k_dir, tmp_path, capsys):
    argv = ["--epochs", "20", "--biased-epochs", "5", "--out", str(tmp_path)]
    result, out = run("004_movielens_100k.py", argv, capsys)
    (funk, funk_result), (_, biased_result) = result["results"].items()
    assert funk.startswith("FunkSVD")
    assert 0.8 < funk_result["mse"] < 1.15 and 0.8 < biased_result["mse"] < 0.95
    assert re.search(r"test MSE \d\.\d{4} .*, 20 epochs in [\d.]+ s", out)
    counts = result["errors"]
    assert counts.sum() == 20_000 and counts.index.min() == 0
    for figure in ("training_loss.png", "error_histogram.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result["top10"]) == 10 and all(result["titles"])
    assert "1. " in out and result["titles"][0] in out
    gradient = result["gradient"]
    assert gradient["notebook_ok"] and gradient["mfrec_ok"]
    assert gradient["fd_gap"] < 1e-6 and gradient["kernel_gap"] < 1e-9
