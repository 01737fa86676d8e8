"""`mfrec evaluate` and `mfrec tune`: cross-validation and hyperparameter search."""

from __future__ import annotations

from typing import Any

import click

from mfrec.cli._common import (
    CliError,
    _bar,
    _build_model,
    _data_options,
    _echo_json,
    _fit_progress,
    _fmt,
    _load_data,
    _model_options,
    _n_steps,
    _pairs,
    _parse_threshold,
    _progress_enabled,
    _resolve_seed,
    _set_threads,
    _show,
    _threads_option,
    _user_errors,
)

RANKING_DEFAULT = "ndcg@10,precision@10,recall@10,map@10"


@click.command()
@click.argument("data")
@_model_options
@click.option(
    "--split",
    "split_spec",
    default="user-holdout:0.2",
    show_default=True,
    help="u1..u5 | u1..u5 one fold | ua | ub | kfold:K | holdout:F | user-holdout:F | "
    "temporal:F | last:K",
)
@click.option(
    "--metrics",
    "metrics_text",
    default=None,
    help="Comma-separated: rmse, mae, mse and ranking metrics precision@K, recall@K, "
    "ndcg@K, map@K, hit@K, coverage@K, mrr@K, mrr (full ranking). Ranking ranks every item "
    f"the user did not rate in training. Default: rmse,mae; {RANKING_DEFAULT} for a model "
    "of implicit feedback (implicit-als), whose scores are not ratings.",
)
@click.option(
    "--relevance-threshold",
    "relevance_text",
    default=None,
    help="A test rating >= this is relevant for ranking metrics, or 'none' (every test "
    "item). Default: 4, or none with --implicit.",
)
@click.option(
    "--implicit",
    "implicit_threshold",
    type=float,
    default=None,
    metavar="T",
    help="Treat the data as implicit feedback first: ratings >= T become interactions "
    "(strength 1), lower ones are dropped.",
)
@_data_options
@_threads_option
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object (folds, mean).")
def evaluate(
    data,
    model_name,
    params,
    seed,
    split_spec,
    metrics_text,
    relevance_text,
    implicit_threshold,
    sep,
    columns,
    scale,
    duplicates,
    json_output,
) -> None:
    """Cross-validate a model: per-fold and mean metrics (RMSE and MAE by default; ranking
    metrics with --metrics, and by default for implicit-als) and fit seconds.

    Without --seed a seed is drawn and printed (and in --json), so that any run can be
    repeated exactly with --seed."""
    from mfrec.data.split import parse_split
    from mfrec.evaluation.ranking import parse_metrics
    from mfrec.evaluation.validate import cross_validate

    given_seed, seed = seed, _resolve_seed(seed)
    enabled = _progress_enabled(json_output)
    model = _build_model(model_name, params, seed)
    notes = []
    if not model.predicts_ratings and metrics_text is None:
        metrics_text = RANKING_DEFAULT
        hint = (
            ""
            if implicit_threshold is not None
            else "; --implicit T first turns ratings >= T into interactions (e.g. --implicit 4)"
        )
        notes.append(
            f"{model_name} scores preferences, not ratings, so it is evaluated by ranking "
            f"metrics ({metrics_text}){hint}"
        )
    try:
        specs = parse_metrics(metrics_text or "rmse,mae")
    except ValueError as exc:
        raise CliError(f"--metrics: {exc}") from None
    if not model.predicts_ratings and any(not s.is_ranking for s in specs):
        notes.append(
            f"{model_name} predicts preference scores (about 0 to 1), not ratings: its "
            "RMSE/MAE against ratings are not meaningful; score it with ranking metrics, e.g. "
            f"--implicit 4 --metrics {RANKING_DEFAULT}"
        )
    threshold = _parse_threshold(relevance_text, implicit_threshold)
    ratings = _load_data(data, sep, columns, scale, duplicates, enabled)
    names = [str(s) for s in specs]
    with _user_errors():
        if implicit_threshold is not None:
            from mfrec.data.implicit import to_implicit

            ratings = to_implicit(ratings, implicit_threshold)
        try:
            folds = parse_split(split_spec, ratings, random_state=seed)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        with (
            _bar(len(folds), f"{model_name} folds", enabled, unit="fold") as bar,
            _fit_progress(model, enabled, "fit", position=1) as (callback, fit_bar),
        ):

            def on_fold(result: dict[str, Any]) -> None:
                bar.update(1)
                fit_bar.reset()
                if enabled:
                    shown = "  ".join(f"{n} {_fmt(result[n])}" for n in names)
                    bar.write(f"  {result['fold']}: {shown}  fit {result['fit_seconds']:.2f}s")

            report = cross_validate(
                model,
                folds,
                specs,
                relevance_threshold=threshold,
                on_fold=on_fold,
                callback=callback,
            )
    report = {
        "data": str(ratings.name or data),
        "model": model_name,
        "params": model.get_params(),
        "seed": seed,
        "split": split_spec,
        "metrics": names,
        "notes": notes,
        **({"relevance_threshold": threshold} if any(s.is_ranking for s in specs) else {}),
        **report,
    }
    if json_output:
        _echo_json(report)
        return
    click.echo(f"{model!r} on {ratings!r}, split {split_spec}, seed {seed}")
    for note in notes:
        click.echo(f"note: {note}")
    widths = [max(9, len(n) + 2) for n in names]
    header = "".join(
        f"{n.upper() if n in ('rmse', 'mae', 'mse') else n:>{w}}"
        for n, w in zip(names, widths, strict=True)
    )
    click.echo(f"{'fold':<10}{header}{'fit s':>9}{'test':>9}")
    for r in report["folds"]:
        cells = "".join(f"{_fmt(r[n]):>{w}}" for n, w in zip(names, widths, strict=True))
        click.echo(f"{r['fold']:<10}{cells}{r['fit_seconds']:>9.2f}{r['n_test']:>9,}")
    m = report["mean"]
    cells = "".join(f"{_fmt(m[n]):>{w}}" for n, w in zip(names, widths, strict=True))
    click.echo(f"{'mean':<10}{cells}{m['fit_seconds']:>9.2f}")
    if "users" in report:
        u = report["users"]
        rule = "every test item" if threshold is None else f"test rating >= {threshold:g}"
        click.echo(
            f"ranking: {u['n_users_evaluated']:,} user-folds evaluated, "
            f"{u['n_users_no_relevant']:,} excluded (no relevant item: {rule}); training "
            "items excluded from the candidates"
        )
    if given_seed is None:
        click.echo(f"seed {seed} was drawn for this run; repeat it with --seed {seed}")


@click.command()
@click.argument("data")
@_model_options
@click.option(
    "--grid",
    "grid_spec",
    metavar="SPEC",
    help="Grid search: NAME=V1,V2;NAME=... (every combination), e.g. "
    "'n_factors=50,100;reg=0.02,0.05'.",
)
@click.option(
    "--random",
    "random_spec",
    metavar="SPEC",
    help="Random search: NAME=DIST;... with int(a,b), logint(a,b), uniform(a,b), "
    "loguniform(a,b), choice(v1,v2,...) or a fixed value, e.g. "
    "'n_factors=int(10,200);lr=loguniform(1e-3,1e-1)'.",
)
@click.option(
    "--n-iter", type=click.IntRange(min=1), default=20, show_default=True, help="Random draws."
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="K of the K-fold cross-validation on the searched data.",
)
@click.option(
    "--split",
    "split_spec",
    default=None,
    help="Hold out a test part first (one train/test split: u1, holdout:0.2, temporal:0.1, "
    "...): the search sees only its training part, and the test part is not scored unless "
    "--report-test asks. Without --split the search uses all of DATA.",
)
@click.option(
    "--report-test",
    is_flag=True,
    help="With --split: after the choice, refit the best configuration on the training "
    "part and print its test RMSE once. Never used to choose; off by default so that a "
    "test score cannot steer the next search round.",
)
@click.option(
    "--threads",
    "n_threads",
    type=click.IntRange(min=1),
    default=None,
    is_eager=True,
    callback=_set_threads,
    help="Threads per fit (numba and BLAS; sets MFREC_THREADS for this run); "
    "configurations run one after another. Default: MFREC_THREADS, else all cores.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Refit the best configuration (on all of DATA, or on the --split training part) "
    "and save it here.",
)
@_data_options
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object.")
def tune(
    data,
    model_name,
    params,
    seed,
    grid_spec,
    random_spec,
    n_iter,
    folds,
    split_spec,
    report_test,
    n_threads,
    out_path,
    sep,
    columns,
    scale,
    duplicates,
    json_output,
) -> None:
    """Search hyperparameters by K-fold cross-validated RMSE; print every configuration
    and the best, optionally refit and save it.

    Selection uses validation folds of the training data only. With --split the test
    part is held out and not scored; --report-test prints the refitted best model's test
    RMSE once, after the choice (never used to choose)."""
    import warnings

    from mfrec.data.split import parse_split
    from mfrec.evaluation.metrics import rmse
    from mfrec.evaluation.search import (
        configure,
        grid_configurations,
        parse_grid,
        parse_space,
        random_configurations,
        search,
        thread_limits,
    )
    from mfrec.exceptions import UnknownIdWarning

    if (grid_spec is None) == (random_spec is None):
        raise CliError("give exactly one of --grid SPEC or --random SPEC")
    if report_test and split_spec is None:
        raise CliError(
            "--report-test scores the held-out test part of --split; give --split too "
            "(e.g. --split u1 --report-test)"
        )
    enabled = _progress_enabled(json_output)
    base = _build_model(model_name, params, seed)
    seed_value = 0 if seed is None else seed
    with _user_errors():
        if grid_spec is not None:
            configs, method = grid_configurations(parse_grid(grid_spec, base)), "grid"
        else:
            space = parse_space(random_spec, base)
            configs, method = random_configurations(space, n_iter, seed_value), "random"
    ratings = _load_data(data, sep, columns, scale, duplicates, enabled)
    with _user_errors():
        test = None
        searched = ratings
        if split_spec is not None:
            try:
                parts = parse_split(split_spec, ratings, random_state=seed_value)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            if len(parts) != 1:
                raise CliError(
                    f"--split {split_spec} gives {len(parts)} folds; tune holds out one test "
                    "part (e.g. u1, holdout:0.2, temporal:0.1) and cross-validates with --folds"
                )
            searched, test = parts[0].train, parts[0].test
        total = len(configs) * folds
        with (
            _bar(total, f"tuning {model_name}", enabled, unit="fit") as bar,
            _fit_progress(base, enabled, "fit", position=1) as (callback, fit_bar),
        ):

            def steps(index: int) -> int | None:
                """Epochs of one fit of configuration ``index`` (its own n_epochs...)."""
                if index >= len(configs):
                    return None
                return _n_steps(type(base)(**{**base.get_params(), **configs[index]}))

            fit_bar.reset(total=steps(0))

            def on_fold(index: int, fold: int, _result: dict[str, Any]) -> None:
                bar.set_description(f"config {index + 1}/{len(configs)}")
                bar.update(1)
                fit_bar.reset(total=steps(index if fold + 1 < folds else index + 1))

            def on_config(result) -> None:
                if enabled:
                    shown = " ".join(f"{k}={_show(v)}" for k, v in result.params.items())
                    score = (
                        f"failed ({result.error})"
                        if result.error
                        else f"RMSE {result.mean_rmse:.4f} ± {result.std_rmse:.4f}"
                    )
                    bar.write(f"  #{result.index + 1} {shown}: {score}")

            result = search(
                base,
                configs,
                searched,
                folds=folds,
                random_state=seed_value,
                n_threads=n_threads,
                method=method,
                on_fold=on_fold,
                on_config=on_config,
                callback=callback,
            )
        best = result.best_params
        report: dict[str, Any] = {
            "data": str(ratings.name or data),
            "model": model_name,
            "search": {"method": method, "spec": grid_spec or random_spec, "folds": folds},
            "searched_ratings": len(searched),
            "split": split_spec,
            **result.to_dict(),
        }
        if test is not None:
            report["n_test"] = len(test)
        refit = None
        if report_test or out_path is not None:
            refit = configure(type(base)(**best), {}, n_threads)
            with thread_limits(n_threads):
                refit.fit(searched)
            report["refit"] = {"n_ratings": len(searched), "fit_seconds": refit.fit_seconds_}
        if report_test:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnknownIdWarning)
                predicted = refit.predict_ratings(test, clip=True)
            report["test_rmse"] = rmse(test.rating, predicted)
        if out_path is not None:
            refit.save(out_path)
            report["out"] = str(out_path)
    if json_output:
        _echo_json(report)
        return
    where = f"the training part of {split_spec}" if split_spec else "all of the data"
    click.echo(
        f"{method} search of {type(base).__name__} on {where} ({len(searched):,} ratings of "
        f"{ratings!r}), {folds}-fold CV, {len(configs)} configurations, "
        f"{result.seconds:.1f}s"
    )
    click.echo(result.table())
    chosen = result.best
    click.echo(
        f"\nbest (#{chosen.index + 1}, mean validation RMSE {chosen.mean_rmse:.4f} ± "
        f"{chosen.std_rmse:.4f}):"
    )
    changed = {k: v for k, v in best.items() if k in chosen.params or k in dict(_pairs(params))}
    preset_name = click.get_current_context().meta.get("mfrec_preset")
    flags = [f"--preset {preset_name}"] if preset_name else []
    flags += [f"--param {k}={_show(v)}" for k, v in changed.items()]
    click.echo("  " + " ".join(flags))
    if test is not None and not report_test:
        click.echo(
            f"test part of {split_spec} held out ({len(test):,} ratings) and not scored; "
            "--report-test scores the chosen model on it once"
        )
    if report_test:
        click.echo(
            f"held-out test RMSE of the best model refitted on the training part: "
            f"{report['test_rmse']:.4f} ({len(test):,} ratings; reported once, not used for "
            "selection)"
        )
    if out_path is not None:
        click.echo(f"saved the refitted best model to {out_path}")
