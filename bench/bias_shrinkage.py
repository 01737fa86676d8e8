"""The bias baseline's penalties: fixed 15 / 10, estimated by empirical Bayes, or best on
the test -- on the search panel and the evaluation panel.

    python bench/bias_shrinkage.py      # from bench/: results/searches/bias_shrinkage.json

Rows per set (each a :class:`mfrec.models.BiasBaseline`, RMSE on the set's test part as
a ratio to the fixed 15 / 10 baseline's):

- ``auto``: ``reg_user="auto", reg_item="auto"``, mfrec's estimate (stochastic-
  approximation EM with a Gibbs E-step, :func:`mfrec.models.baseline.empirical_bayes_regs`);
  what the biased iterative models fall back to as epoch 0;
- ``plain EM``: the estimate first tried and dropped, kept here as the record: EM with
  each bias's variance taken given the other side's biases (``v_u = s_e^2 / (n_u +
  reg_user)``), iterated to a relative change below 1e-3 (at most 200 iterations);
- ``best of grid``: the best pair of ``{2, 5, 10, 15, 25}`` x ``{2, 5, 10, 15, 25}`` *on
  the test part* -- an oracle, the room left.

Sets: the search panel of ``bench/defaults_search.py`` (search + sparse parts, training
data only, each split 80/20) and the evaluation panel of ``bench/defaults.py`` (the
first fold of each set). docs/defaults.md ("Epoch 0's shrinkage") quotes it.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from _common import RESULTS, markdown_table, write_result

GRID = (2.0, 5.0, 10.0, 15.0, 25.0)


def _rmse(model, fold) -> float:
    from mfrec.exceptions import UnknownIdWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownIdWarning)
        predicted = model.predict_ratings(fold.test, clip=True)
    return float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))


def plain_em(train, tol: float = 1e-3, max_iter: int = 200) -> tuple[float, float, int]:
    """The dropped estimator (see the module docstring): (reg_user, reg_item, iterations)."""
    from mfrec.kernels.baseline import residual_sum_of_squares
    from mfrec.models.baseline import _BiasSweep

    lam_u, lam_i = 15.0, 10.0
    sweep = _BiasSweep(train, float(np.mean(train.rating)), lam_u, lam_i)
    n_u, n_i = sweep.user_denominator - lam_u, sweep.item_denominator - lam_i
    n = len(sweep.r)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        sweep.user_denominator, sweep.item_denominator = lam_u + n_u, lam_i + n_i
        sweep()
        ssr = residual_sum_of_squares(sweep.u, sweep.i, sweep.r, sweep.bu, sweep.bi)
        var_u, var_i = ssr / n / (lam_u + n_u), ssr / n / (lam_i + n_i)
        noise = (ssr + n_u @ var_u + n_i @ var_i) / n
        new_u = noise / float(np.mean(sweep.bu**2 + var_u))
        new_i = noise / float(np.mean(sweep.bi**2 + var_i))
        moved = max(abs(new_u - lam_u) / lam_u, abs(new_i - lam_i) / lam_i)
        lam_u, lam_i = new_u, new_i
        if moved < tol:
            break
    return lam_u, lam_i, iterations


def main() -> None:
    import defaults
    from defaults_search import search_panel, sparse_panel
    from mfrec.models import BiasBaseline

    panel = {f"search: {k}": v for k, v in {**search_panel(), **sparse_panel()}.items()}
    for name in [*defaults.REAL_SETS, *defaults.PANEL_SYNTHETIC]:
        panel[f"evaluation: {name}"] = defaults.load_set(name, quick=False)[0]
    rows, results = [], {}
    for name, fold in panel.items():
        fixed = _rmse(BiasBaseline().fit(fold.train), fold)
        started = time.perf_counter()
        auto = BiasBaseline(reg_user="auto", reg_item="auto").fit(fold.train)
        auto_s = time.perf_counter() - started
        em_u, em_i, em_iterations = plain_em(fold.train)
        em = _rmse(BiasBaseline(reg_user=em_u, reg_item=em_i).fit(fold.train), fold)
        grid = {
            (a, b): _rmse(BiasBaseline(reg_user=a, reg_item=b).fit(fold.train), fold)
            for a in GRID
            for b in GRID
        }
        best = min(grid, key=grid.__getitem__)
        results[name] = {
            "ratings": len(fold.train),
            "per_user": len(fold.train) / fold.train.n_users,
            "per_item": len(fold.train) / fold.train.n_items,
            "fixed_rmse": fixed,
            "auto": {"reg_user": auto.reg_user_, "reg_item": auto.reg_item_,
                     "rmse": _rmse(auto, fold), "fit_s": auto_s},
            "plain_em": {"reg_user": em_u, "reg_item": em_i, "rmse": em,
                         "iterations": em_iterations},
            "best_of_grid": {"reg_user": best[0], "reg_item": best[1], "rmse": grid[best]},
        }  # fmt: skip
        r = results[name]
        rows.append([
            name, f"{r['per_user']:.1f} / {r['per_item']:.1f}", round(fixed, 4),
            f"{auto.reg_user_:.1f} / {auto.reg_item_:.1f}", round(r["auto"]["rmse"] / fixed, 4),
            f"{em_u:.1f} / {em_i:.1f}", round(em / fixed, 4),
            f"{best[0]:g} / {best[1]:g}", round(grid[best] / fixed, 4),
        ])  # fmt: skip
        print(" | ".join(str(c) for c in rows[-1]), flush=True)
    ratios = [r["auto"]["rmse"] / r["fixed_rmse"] for r in results.values()]
    em_ratios = [r["plain_em"]["rmse"] / r["fixed_rmse"] for r in results.values()]
    summary = {
        "auto_mean_ratio": float(np.mean(ratios)), "auto_worst_ratio": float(np.max(ratios)),
        "plain_em_mean_ratio": float(np.mean(em_ratios)),
        "plain_em_worst_ratio": float(np.max(em_ratios)),
    }  # fmt: skip
    table = markdown_table(
        ["set", "ratings per user / item", "15 / 10 RMSE", "auto penalties", "auto ratio",
         "plain EM penalties", "plain EM ratio", "best of grid (on test)", "its ratio"],
        rows,
    )  # fmt: skip
    print(table)
    print(summary)
    path = write_result(
        "bias_shrinkage",
        {"results": results, "summary": summary, "markdown": table},
        folder=RESULTS / "searches",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
