"""Tuned hyperparameters per (model, dataset): ``--preset NAME`` on the command line.

Each preset is the winner of recorded search rounds on the *training* part only, never
on the data its quality is reported on:

- ``ml-100k`` presets were searched on u1.base (u1.test is never loaded);
- ``ml-latest-small`` presets on the 80% training part of ``holdout:0.2`` with seed 0.

``PRESET_SOURCES`` lists, per preset, every round in order: the command that ran it
(``bench/preset_search.py``, from the repository root; ``bench/preset_searches.sh`` runs
them all) and the JSON it wrote, ``bench/results/searches/preset_<model>_<data>_<round>.json``,
which holds every trial -- its values, the validation RMSE of each fold, their mean and
its seconds -- with the command, the seed and the data. The preset is the best trial of
its last round, floats rounded to two significant digits (``rounded``), and pins the
settings that trial ran with besides the searched ones (optimizer, early stopping), so
a later change of a default does not change what a preset means;
``tests/models/test_presets.py`` checks all of that against the records.

Protocol of every round: 3-fold cross-validation of the training part (seed 0, the same
folds in every round of a preset, so rounds compare), one thread per fit, a small
budget (8-10 random draws, or a small grid) -- the searches share a 2-core machine. For
the SGD models the first round searches plain SGD (the classic rule, in the ranges of
the earlier unrecorded searches), the second AdaGrad with early stopping (the defaults
since) together with the defaults themselves and the first round's winner, on the same
folds: the recorded second round decides the rule, and the preset pins what won. The
last round of every preset but BayesianMF's runs the preset it replaces (found by
earlier 5-fold searches whose records were lost) against the new winner on the same
folds: the previous ``als`` ``ml-latest-small`` and ``gd-mf`` ``ml-100k`` presets won
theirs and are kept, now with a record.

Use one from Python with ``SVDpp(**preset("svdpp", "ml-100k"), random_state=0)`` or on
the command line with ``mfrec evaluate ml-100k --model svdpp --preset ml-100k``
(explicit ``--param`` values override the preset's). A preset is a starting point for
similar data (size, density, rating scale), not a guarantee: re-tune for data that
differs much.

Honest reporting: u1.base holds the test ratings of u2..u5 -- so an ``ml-100k`` preset's
u1 test RMSE is clean, while its u2..u5 (and hence u1..u5 mean) figures are slightly
optimistic (a handful of hyperparameters chosen with those ratings in view). An
``ml-latest-small`` preset's held-out figure is the test part of ``holdout:0.2``, seed 0.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from mfrec.exceptions import ParameterError


class SearchRound(NamedTuple):
    """One recorded search round: the command (run from the repository root) that wrote
    :attr:`record`."""

    command: str

    @property
    def record(self) -> str:
        """The JSON the round wrote, relative to the repository root."""
        _, _, model, dataset, name = self.command.split()[:5]
        return f"bench/results/searches/preset_{model}_{dataset}_{name}.json"


def rounded(value: Any) -> Any:
    """A searched value as a preset states it: floats to two significant digits, every
    other value (ints, strings, None, booleans) unchanged."""
    if isinstance(value, float) and value != 0 and math.isfinite(value):
        return float(f"{value:.2g}")
    return value


#: ``(model name, preset name) -> hyperparameters``. Preset names are the datasets they
#: were tuned on. The comment above each gives its final round's mean validation RMSE
#: (3-fold CV of the training part).
#: Hyperparameters that did not exist when the recorded rounds ran, with the value that
#: reproduces what those rounds measured: the count-aware penalty (``reg_row``,
#: ``reg_bias_row``) came after them, so the presets of the models that have it pin it
#: off. Rerun a round with ``--param reg_row=0 --param reg_bias_row=0`` to reproduce it.
#: Likewise the SGD models' ``rating_unit`` (their hyperparameters in units of a 1..5
#: scale): the rounds ran on the raw ratings, ``rating_unit=1``.
COUNT_AWARE_OFF: dict[str, Any] = {"reg_row": 0.0, "reg_bias_row": 0.0}
RAW_UNITS: dict[str, Any] = {"rating_unit": 1.0}
SEARCHED_WITHOUT: dict[str, Any] = {**COUNT_AWARE_OFF, **RAW_UNITS}

PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # Round 2: plain SGD (round 1's winner) beat AdaGrad with early stopping (best
    # 0.9194) and the defaults (0.9215); round 3: the previous preset scores 0.9197.
    # Final round: validation RMSE 0.9182 (3-fold CV, 2 trials).
    ("svdpp", "ml-100k"): {
        "optimizer": "sgd",
        "init_std": 0.1,
        "patience": None,
        "n_factors": 54,
        "n_epochs": 63,
        "lr": 0.0066,
        "reg": 0.15,
        "reg_implicit": 0.012,
        "reg_bias": 0.0082,
        **SEARCHED_WITHOUT,
    },
    # Round 2: AdaGrad with early stopping won; plain SGD (round 1's winner) 0.9113, the
    # defaults 0.9073; round 3: the previous preset (plain SGD) scores 0.9124.
    # Final round: validation RMSE 0.9031 (3-fold CV, 2 trials).
    ("svdpp", "ml-latest-small"): {
        "n_factors": 107,
        "lr": 0.055,
        "reg": 0.03,
        "optimizer": "adagrad",
        "init_std": 0.01,
        "patience": 3,
        "validation_fraction": 0.05,
        "n_epochs": 100,
        **SEARCHED_WITHOUT,
    },
    # Round 1: 10 random draws; round 2: the previous preset scores 0.9324.
    # Final round: validation RMSE 0.9316 (3-fold CV, 2 trials).
    ("als", "ml-100k"): {
        "n_factors": 31,
        "n_epochs": 25,
        "reg": 0.17,
        "reg_bias": 0.0073,
        "patience": None,
        **COUNT_AWARE_OFF,
    },
    # Round 1: 10 random draws (best 0.9370); round 2: the previous preset won.
    # Final round: validation RMSE 0.9201 (3-fold CV, 2 trials).
    ("als", "ml-latest-small"): {
        "n_factors": 79,
        "n_epochs": 18,
        "reg": 0.099,
        "reg_bias": 0.094,
        "patience": None,
        **COUNT_AWARE_OFF,
    },
    # Round 1 at 200 samples: implicit both/none x 10/20 factors (0.8999, 0.9021; none:
    # 0.9155, 0.9167); round 2: 400 samples (0.8990) vs 200 (0.8999).
    # Final round: validation RMSE 0.8990 (3-fold CV, 2 trials).
    ("bayes-mf", "ml-100k"): {
        "n_samples": 400,
        "burn_in": 100,
        "implicit": "both",
        "n_factors": 10,
    },
    # Implicit both/none x 10/20 factors at 200 samples.
    # Final round: validation RMSE 0.8961 (3-fold CV, 4 trials).
    ("bayes-mf", "ml-latest-small"): {
        "n_samples": 200,
        "burn_in": 100,
        "implicit": "both",
        "n_factors": 20,
    },
    # Round 2: AdaGrad with early stopping won; plain SGD (round 1's winner) 0.9347, the
    # defaults 0.9235; round 3: the previous preset (plain SGD) scores 0.9311.
    # Final round: validation RMSE 0.9225 (3-fold CV, 2 trials).
    ("biased-mf", "ml-100k"): {
        "n_factors": 80,
        "lr": 0.054,
        "reg": 0.07,
        "optimizer": "adagrad",
        "init_std": 0.01,
        "patience": 3,
        "validation_fraction": 0.05,
        "n_epochs": 100,
        **SEARCHED_WITHOUT,
    },
    # Round 2: AdaGrad with early stopping won; plain SGD (round 1's winner) 0.9199, the
    # defaults 0.9080; round 3: the previous preset (plain SGD) scores 0.9159.
    # Final round: validation RMSE 0.9076 (3-fold CV, 2 trials).
    ("biased-mf", "ml-latest-small"): {
        "n_factors": 80,
        "lr": 0.054,
        "reg": 0.07,
        "optimizer": "adagrad",
        "init_std": 0.01,
        "patience": 3,
        "validation_fraction": 0.05,
        "n_epochs": 100,
        **SEARCHED_WITHOUT,
    },
    # Round 2: AdaGrad with early stopping won; plain SGD (round 1's winner) 0.9544, the
    # defaults 0.9307; round 3: the previous preset (plain SGD) scores 0.9399.
    # Final round: validation RMSE 0.9298 (3-fold CV, 2 trials).
    ("funk-svd", "ml-100k"): {
        "n_factors": 80,
        "lr": 0.054,
        "reg": 0.07,
        "optimizer": "adagrad",
        "init_std": 0.01,
        "init_mean": None,
        "patience": 3,
        "validation_fraction": 0.05,
        "n_epochs": 100,
        **RAW_UNITS,
    },
    # Round 2: AdaGrad with early stopping won; plain SGD (round 1's winner) 0.9802, the
    # defaults 0.9495; round 3: the previous preset (plain SGD) scores 0.9702.
    # Final round: validation RMSE 0.9345 (3-fold CV, 2 trials).
    ("funk-svd", "ml-latest-small"): {
        "n_factors": 86,
        "lr": 0.019,
        "reg": 0.022,
        "optimizer": "adagrad",
        "init_std": 0.01,
        "init_mean": None,
        "patience": 3,
        "validation_fraction": 0.05,
        "n_epochs": 100,
        **RAW_UNITS,
    },
    # Round 1: 10 random draws and the defaults of the time (best 0.9304); round 2: the
    # previous preset won.
    # Final round: validation RMSE 0.9289 (3-fold CV, 2 trials).
    ("gd-mf", "ml-100k"): {
        "n_factors": 100,
        "n_epochs": 125,
        "lr": 0.1,
        "reg": 0.12,
        "reg_bias": 0.05,
        "patience": None,
    },
}

#: ``(model name, preset name) -> the search rounds it came from``, in order; the last
#: round's best trial is the preset.
PRESET_SOURCES: dict[tuple[str, str], tuple[SearchRound, ...]] = {
    ("svdpp", "ml-100k"): (
        SearchRound(
            "python bench/preset_search.py svdpp ml-100k r1 --threads 1 --param optimizer=sgd "
            "--param init_std=0.1 --param patience=None --n-iter 8 --random "
            "'n_factors=logint(10,120);n_epochs=int(30,80);lr=loguniform(0.003,0.01);"
            "reg=loguniform(0.05,0.25);reg_implicit=loguniform(0.003,0.1);"
            "reg_bias=loguniform(0.005,0.2)'"
        ),
        SearchRound(
            "python bench/preset_search.py svdpp ml-100k r2 --threads 1 --n-iter 6 --random "
            "'n_factors=logint(20,120);lr=loguniform(0.01,0.08);reg=loguniform(0.03,0.2)' --also "
            "'[{}]' --include-best r1"
        ),
        SearchRound(
            "python bench/preset_search.py svdpp ml-100k r3 --threads 1 --include-best r2 "
            '--configs \'[{"n_factors":\' 80, "n_epochs": 65, "lr": 0.0047, "reg": 0.1, '
            '"reg_bias": 0.0075, "reg_implicit": 0.011, "optimizer": "sgd", "init_std": 0.1, '
            "\"patience\": 'null}]'"
        ),
    ),
    ("svdpp", "ml-latest-small"): (
        SearchRound(
            "python bench/preset_search.py svdpp ml-latest-small r1 --threads 1 --param "
            "optimizer=sgd --param init_std=0.1 --param patience=None --n-iter 8 --random "
            "'n_factors=logint(40,150);n_epochs=int(45,90);lr=loguniform(0.0035,0.008);"
            "reg=loguniform(0.08,0.2);reg_implicit=loguniform(0.005,0.08);"
            "reg_bias=loguniform(0.005,0.2)'"
        ),
        SearchRound(
            "python bench/preset_search.py svdpp ml-latest-small r2 --threads 1 --n-iter 6 "
            "--random 'n_factors=logint(20,120);lr=loguniform(0.01,0.08);"
            "reg=loguniform(0.03,0.2)' --also '[{}]' --include-best r1"
        ),
        SearchRound(
            "python bench/preset_search.py svdpp ml-latest-small r3 --threads 1 --include-best "
            'r2 --configs \'[{"n_factors":\' 99, "n_epochs": 74, "lr": 0.006, "reg": 0.15, '
            '"reg_bias": 0.0082, "reg_implicit": 0.015, "optimizer": "sgd", "init_std": 0.1, '
            "\"patience\": 'null}]'"
        ),
    ),
    ("als", "ml-100k"): (
        SearchRound(
            "python bench/preset_search.py als ml-100k r1 --threads 1 --n-iter 10 --random "
            "'n_factors=logint(8,60);n_epochs=int(10,25);reg=loguniform(0.05,0.3);"
            "reg_bias=loguniform(0.0005,0.5)'"
        ),
        SearchRound(
            "python bench/preset_search.py als ml-100k r2 --threads 1 --include-best r1 "
            '--configs \'[{"n_factors":\' 34, "n_epochs": 16, "reg": 0.14, "reg_bias": \'0.0013}]\''
        ),
    ),
    ("als", "ml-latest-small"): (
        SearchRound(
            "python bench/preset_search.py als ml-latest-small r1 --threads 1 --n-iter 10 "
            "--random 'n_factors=logint(5,100);n_epochs=int(8,25);reg=loguniform(0.03,0.4);"
            "reg_bias=loguniform(0.0005,0.5)'"
        ),
        SearchRound(
            "python bench/preset_search.py als ml-latest-small r2 --threads 1 --include-best r1 "
            '--configs \'[{"n_factors":\' 79, "n_epochs": 18, "reg": 0.099, "reg_bias": \'0.094}]\''
        ),
    ),
    ("bayes-mf", "ml-100k"): (
        SearchRound(
            "python bench/preset_search.py bayes-mf ml-100k r1 --threads 1 --param n_samples=200 "
            "--param burn_in=100 --grid 'implicit=none,both;n_factors=10,20'"
        ),
        SearchRound(
            "python bench/preset_search.py bayes-mf ml-100k r2 --threads 1 --from-best r1 --grid "
            "n_samples=400 --include-best r1"
        ),
    ),
    ("bayes-mf", "ml-latest-small"): (
        SearchRound(
            "python bench/preset_search.py bayes-mf ml-latest-small r1 --threads 1 --param "
            "n_samples=200 --param burn_in=100 --grid 'implicit=none,both;n_factors=10,20'"
        ),
    ),
    ("biased-mf", "ml-100k"): (
        SearchRound(
            "python bench/preset_search.py biased-mf ml-100k r1 --threads 1 --param "
            "optimizer=sgd --param init_std=0.1 --param patience=None --n-iter 10 --random "
            "'n_factors=logint(10,200);n_epochs=int(20,120);lr=loguniform(0.002,0.03);"
            "reg=loguniform(0.005,0.2)'"
        ),
        SearchRound(
            "python bench/preset_search.py biased-mf ml-100k r2 --threads 1 --n-iter 8 --random "
            "'n_factors=logint(20,200);lr=loguniform(0.01,0.1);reg=loguniform(0.02,0.2)' --also "
            "'[{}]' --include-best r1"
        ),
        SearchRound(
            "python bench/preset_search.py biased-mf ml-100k r3 --threads 1 --include-best r2 "
            '--configs \'[{"n_factors":\' 200, "n_epochs": 80, "lr": 0.007, "reg": 0.082, '
            '"optimizer": "sgd", "init_std": 0.1, "patience": \'null}]\''
        ),
    ),
    ("biased-mf", "ml-latest-small"): (
        SearchRound(
            "python bench/preset_search.py biased-mf ml-latest-small r1 --threads 1 --param "
            "optimizer=sgd --param init_std=0.1 --param patience=None --n-iter 10 --random "
            "'n_factors=logint(10,200);n_epochs=int(20,120);lr=loguniform(0.002,0.03);"
            "reg=loguniform(0.005,0.2)'"
        ),
        SearchRound(
            "python bench/preset_search.py biased-mf ml-latest-small r2 --threads 1 --n-iter 8 "
            "--random 'n_factors=logint(20,200);lr=loguniform(0.01,0.1);"
            "reg=loguniform(0.02,0.2)' --also '[{}]' --include-best r1"
        ),
        SearchRound(
            "python bench/preset_search.py biased-mf ml-latest-small r3 --threads 1 "
            '--include-best r2 --configs \'[{"n_factors":\' 200, "n_epochs": 80, "lr": 0.007, '
            '"reg": 0.082, "optimizer": "sgd", "init_std": 0.1, "patience": \'null}]\''
        ),
    ),
    ("funk-svd", "ml-100k"): (
        SearchRound(
            "python bench/preset_search.py funk-svd ml-100k r1 --threads 1 --param optimizer=sgd "
            "--param init_std=0.1 --param patience=None --param init_mean=0.0 --n-iter 10 "
            "--random 'n_factors=logint(10,200);n_epochs=int(20,120);lr=loguniform(0.002,0.03);"
            "reg=loguniform(0.005,0.2)'"
        ),
        SearchRound(
            "python bench/preset_search.py funk-svd ml-100k r2 --threads 1 --n-iter 8 --random "
            "'n_factors=logint(20,200);lr=loguniform(0.01,0.1);reg=loguniform(0.02,0.2)' --also "
            "'[{}]' --include-best r1"
        ),
        SearchRound(
            "python bench/preset_search.py funk-svd ml-100k r3 --threads 1 --include-best r2 "
            '--configs \'[{"n_factors":\' 58, "n_epochs": 70, "lr": 0.0058, "reg": 0.13, '
            '"init_mean": 0.0, "optimizer": "sgd", "init_std": 0.1, "patience": \'null}]\''
        ),
    ),
    ("funk-svd", "ml-latest-small"): (
        SearchRound(
            "python bench/preset_search.py funk-svd ml-latest-small r1 --threads 1 --param "
            "optimizer=sgd --param init_std=0.1 --param patience=None --param init_mean=0.0 "
            "--n-iter 10 --random 'n_factors=logint(10,200);n_epochs=int(20,120);"
            "lr=loguniform(0.002,0.03);reg=loguniform(0.005,0.2)'"
        ),
        SearchRound(
            "python bench/preset_search.py funk-svd ml-latest-small r2 --threads 1 --n-iter 8 "
            "--random 'n_factors=logint(20,200);lr=loguniform(0.01,0.1);"
            "reg=loguniform(0.02,0.2)' --also '[{}]' --include-best r1"
        ),
        SearchRound(
            "python bench/preset_search.py funk-svd ml-latest-small r3 --threads 1 "
            '--include-best r2 --configs \'[{"n_factors":\' 34, "n_epochs": 48, "lr": 0.014, '
            '"reg": 0.16, "init_mean": 0.0, "optimizer": "sgd", "init_std": 0.1, "patience": '
            "'null}]'"
        ),
    ),
    ("gd-mf", "ml-100k"): (
        SearchRound(
            "python bench/preset_search.py gd-mf ml-100k r1 --threads 1 --n-iter 10 --random "
            "'n_factors=logint(20,150);n_epochs=int(80,200);lr=loguniform(0.05,0.2);"
            "reg=loguniform(0.05,0.3);reg_bias=loguniform(0.01,0.1)' --also '[{}]'"
        ),
        SearchRound(
            "python bench/preset_search.py gd-mf ml-100k r2 --threads 1 --include-best r1 "
            '--configs \'[{"n_factors":\' 100, "n_epochs": 125, "lr": 0.1, "reg": 0.12, '
            "\"reg_bias\": '0.05}]'"
        ),
    ),
}


def preset_names(model: str) -> list[str]:
    """The presets available for a model (by CLI name)."""
    return sorted(name for (m, name) in PRESETS if m == model)


def preset(model: str, name: str) -> dict[str, Any]:
    """A copy of the hyperparameters of preset ``name`` for ``model`` (CLI name).

    Raises
    ------
    ParameterError
        When there is no such preset; the message lists the ones there are.
    """
    try:
        return dict(PRESETS[(model, name)])
    except KeyError:
        names = preset_names(model)
        known = ", ".join(names) if names else "none"
        raise ParameterError(
            f"no preset {name!r} for model {model!r}; its presets: {known}"
            + (
                ""
                if names
                else f" (models with presets: {', '.join(sorted({m for m, _ in PRESETS}))})"
            )
        ) from None
