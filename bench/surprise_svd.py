"""BiasedMF vs Surprise's SVD at Surprise's defaults, ML-100K u1..u5, side by side.

    python bench/surprise_svd.py

Same folds, same settings (100 factors, 20 epochs, lr 0.005, reg 0.02, init std 0.1),
predictions clipped to 1..5 for both (Surprise's default). Each fold is fitted 3 times by
each library with seeds shared between them, interleaved: RMSE/MAE are the means, fit
seconds the medians. mfrec uses all cores (its default), Surprise one (all it can); a
third column is mfrec's serial kernel (one stratum, one thread), to show that the
parallel schedule costs no accuracy.
Writes bench/results/surprise_svd.json.
"""

from __future__ import annotations

import numpy as np

from _common import (
    markdown_table,
    ml100k_folds,
    rmse_mae,
    surprise_data,
    timed,
    warm_up,
    write_result,
)
from mfrec.models import BiasedMF

# Surprise's rule: plain SGD, all 20 epochs (mfrec's own defaults are AdaGrad + early stopping).
SETTINGS = {
    "n_factors": 100, "n_epochs": 20, "lr": 0.005, "reg": 0.02, "init_std": 0.1,
    "optimizer": "sgd", "patience": None, "reg_row": 0.0, "reg_bias_row": 0.0,
    "rating_unit": 1.0,
}  # fmt: skip
PEER_SETTINGS = {
    "n_factors": 100,
    "n_epochs": 20,
    "lr_all": 0.005,
    "reg_all": 0.02,
    "init_std_dev": 0.1,
}
REPEATS = 3


#: The serial kernel: one stratum (no parallel schedule), one thread.
SERIAL = {"n_strata": 1, "n_threads": 1}


def measure(repeats: int = REPEATS, verbose: bool = True) -> tuple[list[dict], dict]:
    """Per-fold and mean RMSE, MAE and fit seconds of BiasedMF (all cores), BiasedMF's
    serial kernel and Surprise's SVD on ML-100K u1..u5; also used by bench/scale.py."""
    from surprise import SVD

    _, folds = ml100k_folds()
    rows = []
    for k, fold in enumerate(folds):
        trainset, testset = surprise_data(fold)
        seconds: dict[str, list[float]] = {"mfrec": [], "serial": [], "surprise": []}
        errors: dict[str, list[tuple[float, float]]] = {"mfrec": [], "serial": [], "surprise": []}
        # Fit each REPEATS times with different seeds, interleaved: fit seconds are the
        # median (this machine's timings wander by tens of percent), RMSE and MAE the
        # mean (one seed's luck is worth +-0.003 RMSE on a fold).
        for rep in range(repeats):
            seed = 100 * k + rep
            for name, extra in (("mfrec", {}), ("serial", SERIAL)):
                model = BiasedMF(**SETTINGS, **extra, random_state=seed)
                seconds[name].append(timed(lambda: model.fit(fold.train))[1])  # noqa: B023
                predicted = model.predict_ratings(fold.test, clip=True)
                errors[name].append(rmse_mae(fold.test.rating, predicted))
            algo = SVD(**PEER_SETTINGS, random_state=seed)
            seconds["surprise"].append(timed(lambda: algo.fit(trainset))[1])  # noqa: B023
            predictions = algo.test(testset)
            truth = np.array([p.r_ui for p in predictions])
            errors["surprise"].append(rmse_mae(truth, np.array([p.est for p in predictions])))
        row: dict = {"fold": fold.name}
        for name in seconds:
            rmse, mae = np.mean(errors[name], axis=0)
            row.update({f"{name}_rmse": rmse, f"{name}_mae": mae,
                        f"{name}_fit_s": float(np.median(seconds[name]))})  # fmt: skip
        rows.append(row)
        if verbose:
            print(
                f"{fold.name}: mfrec RMSE {row['mfrec_rmse']:.4f} fit {row['mfrec_fit_s']:.3f}s"
                f" | serial RMSE {row['serial_rmse']:.4f} fit {row['serial_fit_s']:.3f}s"
                f" | Surprise RMSE {row['surprise_rmse']:.4f} fit {row['surprise_fit_s']:.3f}s",
                flush=True,
            )
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "fold"}
    mean["speedup"] = mean["surprise_fit_s"] / mean["mfrec_fit_s"]
    return rows, mean


def main() -> None:
    compile_seconds = warm_up(lambda: BiasedMF(n_factors=4, n_epochs=1))
    rows, mean = measure()
    columns = ["mfrec", "serial", "surprise"]
    table = markdown_table(
        ["fold", "mfrec RMSE", "serial kernel RMSE", "Surprise RMSE", "mfrec MAE",
         "serial kernel MAE", "Surprise MAE", "mfrec fit s", "serial kernel fit s",
         "Surprise fit s"],
        [
            [r["fold"], *(r[f"{c}_rmse"] for c in columns), *(r[f"{c}_mae"] for c in columns),
             *(r[f"{c}_fit_s"] for c in columns)]
            for r in [*rows, {"fold": "mean", **mean}]
        ],
    )  # fmt: skip
    summary = (
        f"Mean speed-up {mean['speedup']:.1f}x; RMSE {mean['mfrec_rmse']:.4f} (mfrec) vs "
        f"{mean['surprise_rmse']:.4f} (Surprise). The serial kernel (one stratum, one "
        f"thread) gets RMSE {mean['serial_rmse']:.4f} in {mean['serial_fit_s']:.3f}s. "
        f"numba compile/load before the first fit: {compile_seconds:.2f}s, not included "
        "in fit times."
    )
    print(table)
    print(summary)
    write_result(
        "surprise_svd",
        {
            "markdown": table + "\n\n" + summary,
            "settings": SETTINGS,
            "folds": rows,
            "mean": mean,
            "compile_seconds": compile_seconds,
        },
    )


if __name__ == "__main__":
    main()
