"""mfrec's NMF vs Surprise's NMF at Surprise's defaults, ML-100K u1..u5, side by side.

    python bench/surprise_nmf.py [--repeats N] [--folds u1 u2 ...]

Same folds, same settings (15 factors, 50 epochs, reg_pu = reg_qi = 0.06, factors
initialised uniform in [0, 1), no biases), predictions clipped to 1..5 for both
(Surprise's default). Each fold is fitted REPEATS times by each configuration with
seeds shared between them, interleaved: RMSE/MAE are the means, fit seconds the
medians. mfrec uses all cores (its default), Surprise one (all it can).

Both libraries run the same multiplicative update on the same objective, both sides
updated from the epoch's starting factors (``schedule="simultaneous"``, stated
explicitly below), so at equal settings the RMSE differs by the luck of the random start
(+-0.004 on a fold). Two more mfrec
rows show what other settings give: the same objective run to 200 epochs (the update
converges slowly, and test RMSE keeps improving), and ``biased=True`` at 50 epochs.
Writes bench/results/surprise_nmf.json.
"""

from __future__ import annotations

import argparse
import warnings

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
from mfrec.exceptions import UnknownIdWarning
from mfrec.models import NMF

#: Surprise's NMF defaults, stated in full (not mfrec's defaults, whatever they become):
#: ``schedule="simultaneous"`` updates both sides from the epoch's starting factors, as
#: Surprise does.
SETTINGS = {
    "n_factors": 15,
    "n_epochs": 50,
    "reg": 0.06,
    "init_low": 0.0,
    "init_high": 1.0,
    "biased": False,
    "schedule": "simultaneous",
}
PEER_SETTINGS = {
    "n_factors": 15,
    "n_epochs": 50,
    "reg_pu": 0.06,
    "reg_qi": 0.06,
    "init_low": 0,
    "init_high": 1,
    "biased": False,
}
#: label -> mfrec NMF settings; the first is the like-for-like comparison.
VARIANTS = {
    "mfrec NMF (Surprise's default settings)": SETTINGS,
    "mfrec NMF, n_epochs=200": {**SETTINGS, "n_epochs": 200},
    "mfrec NMF, biased=True": {**SETTINGS, "biased": True},
}
PEER = "Surprise NMF (defaults)"
REPEATS = 3


def main() -> None:
    from surprise import NMF as SurpriseNMF

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--folds", nargs="+", default=["u1", "u2", "u3", "u4", "u5"])
    args = parser.parse_args()
    _, folds = ml100k_folds(tuple(args.folds))
    compile_seconds = warm_up(lambda: NMF(n_factors=4, n_epochs=1))
    warm_up(lambda: NMF(n_factors=4, n_epochs=1, biased=True))
    labels = [*VARIANTS, PEER]
    per_fold: dict[str, list[dict[str, float]]] = {name: [] for name in labels}
    for k, fold in enumerate(folds):
        trainset, testset = surprise_data(fold)
        truth = np.array([t[2] for t in testset])
        seconds: dict[str, list[float]] = {name: [] for name in labels}
        errors: dict[str, list[tuple[float, float]]] = {name: [] for name in labels}
        for rep in range(args.repeats):
            seed = 100 * k + rep
            for name, settings in VARIANTS.items():
                model = NMF(**settings, random_state=seed)
                seconds[name].append(timed(lambda: model.fit(fold.train))[1])  # noqa: B023
                with warnings.catch_warnings():  # test items unseen in training: documented
                    warnings.simplefilter("ignore", UnknownIdWarning)
                    predicted = model.predict_ratings(fold.test, clip=True)
                errors[name].append(rmse_mae(fold.test.rating, predicted))
            algo = SurpriseNMF(**PEER_SETTINGS, random_state=seed)
            seconds[PEER].append(timed(lambda: algo.fit(trainset))[1])  # noqa: B023
            estimates = np.array([p.est for p in algo.test(testset)])
            errors[PEER].append(rmse_mae(truth, estimates))
        for name in labels:
            rmse, mae = np.mean(errors[name], axis=0)
            # Seed noise of this fold's mean RMSE: variance over repeats / repeats.
            spread = np.var([e[0] for e in errors[name]], ddof=1) if args.repeats > 1 else 0.0
            per_fold[name].append(
                {"rmse": rmse, "mae": mae, "fit_s": float(np.median(seconds[name])),
                 "rmse_var_of_mean": float(spread / args.repeats)}
            )  # fmt: skip
        equal = per_fold[labels[0]][-1]
        peer = per_fold[PEER][-1]
        print(
            f"{fold.name}: mfrec RMSE {equal['rmse']:.4f} fit {equal['fit_s']:.3f}s | "
            f"Surprise RMSE {peer['rmse']:.4f} fit {peer['fit_s']:.3f}s",
            flush=True,
        )
    mean = {
        name: {key: float(np.mean([f[key] for f in rows])) for key in ("rmse", "mae", "fit_s")}
        for name, rows in per_fold.items()
    }
    ours = labels[0]
    fold_table = markdown_table(
        ["fold", "mfrec RMSE", "Surprise RMSE", "mfrec MAE", "Surprise MAE", "mfrec fit s",
         "Surprise fit s"],
        [
            [fold.name, a["rmse"], b["rmse"], a["mae"], b["mae"], a["fit_s"], b["fit_s"]]
            for fold, a, b in zip(folds, per_fold[ours], per_fold[PEER], strict=True)
        ]
        + [
            ["mean", mean[ours]["rmse"], mean[PEER]["rmse"], mean[ours]["mae"],
             mean[PEER]["mae"], mean[ours]["fit_s"], mean[PEER]["fit_s"]]
        ],
    )  # fmt: skip
    variant_table = markdown_table(
        ["configuration", "RMSE", "MAE", "fit s", "speed-up vs Surprise"],
        [
            [name, m["rmse"], m["mae"], m["fit_s"], f"{mean[PEER]['fit_s'] / m['fit_s']:.1f}x"]
            for name, m in mean.items()
        ],
    )
    delta = mean[ours]["rmse"] - mean[PEER]["rmse"]
    # Standard error of the difference of the two means over folds, from the spread of
    # each fold's repeats (the fits are independent: different random initialisations).
    se = float(
        np.sqrt(sum(f["rmse_var_of_mean"] for name in (ours, PEER) for f in per_fold[name]))
        / len(folds)
    )
    if delta <= 0:
        verdict = "no worse than"
    elif args.repeats > 1 and delta <= 2 * se:
        verdict = f"{delta:.4f} worse than (within two standard errors, 2 x {se:.4f}, of)"
    else:
        verdict = f"{delta:.4f} worse than (standard error of the difference {se:.4f})"
    summary = (
        f"At equal settings (Surprise's defaults for both) mfrec's RMSE "
        f"{mean[ours]['rmse']:.4f} is {verdict} Surprise's "
        f"{mean[PEER]['rmse']:.4f}, {mean[PEER]['fit_s'] / mean[ours]['fit_s']:.1f}x faster. "
        f"Folds {', '.join(args.folds)}, {args.repeats} fits per fold and configuration. "
        f"numba compile/load before the first fit: {compile_seconds:.2f}s, not included."
    )
    print(fold_table)
    print(variant_table)
    print(summary)
    write_result(
        "surprise_nmf",
        {
            "markdown": fold_table + "\n\n" + variant_table + "\n\n" + summary,
            "settings": SETTINGS,
            "peer_settings": PEER_SETTINGS,
            "variants": VARIANTS,
            "folds": {name: rows for name, rows in per_fold.items()},
            "mean": mean,
            "compile_seconds": compile_seconds,
        },
    )


if __name__ == "__main__":
    main()
