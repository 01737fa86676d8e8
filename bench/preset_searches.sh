#!/bin/sh
# Every recorded search round behind mfrec.models.presets (bench/preset_search.py; the
# JSON of each round lands in bench/results/searches/preset_<model>_<dataset>_<round>.json).
# 3-fold CV on the training part only (ml-100k: u1.base; ml-latest-small: the training
# part of holdout:0.2, seed 0), seed 0, one thread per fit. Rounds of one preset run in
# order (a later round reads an earlier one's winner). Usage: sh bench/preset_searches.sh
# [sgd|other|all]
set -e
cd "$(dirname "$0")/.."
S="python bench/preset_search.py"
[ -n "$PYTHON" ] && S="$PYTHON bench/preset_search.py"
PLAIN="--param optimizer=sgd --param init_std=0.1 --param patience=None"
SGD_SPACE="n_factors=logint(10,200);n_epochs=int(20,120);lr=loguniform(0.002,0.03);reg=loguniform(0.005,0.2)"
ADA_SPACE="n_factors=logint(20,200);lr=loguniform(0.01,0.1);reg=loguniform(0.02,0.2)"

sgd() {
    # SVD++: r1 plain SGD (the ranges of the earlier, unrecorded second rounds);
    # r2 AdaGrad with early stopping (the defaults since), the defaults themselves and
    # r1's winner on the same folds.
    $S svdpp ml-100k r1 --threads 1 $PLAIN --n-iter 8 --random \
        "n_factors=logint(10,120);n_epochs=int(30,80);lr=loguniform(0.003,0.01);reg=loguniform(0.05,0.25);reg_implicit=loguniform(0.003,0.1);reg_bias=loguniform(0.005,0.2)"
    $S svdpp ml-100k r2 --threads 1 --n-iter 6 --random \
        "n_factors=logint(20,120);lr=loguniform(0.01,0.08);reg=loguniform(0.03,0.2)" \
        --also '[{}]' --include-best r1
    $S svdpp ml-latest-small r1 --threads 1 $PLAIN --n-iter 8 --random \
        "n_factors=logint(40,150);n_epochs=int(45,90);lr=loguniform(0.0035,0.008);reg=loguniform(0.08,0.2);reg_implicit=loguniform(0.005,0.08);reg_bias=loguniform(0.005,0.2)"
    $S svdpp ml-latest-small r2 --threads 1 --n-iter 6 --random \
        "n_factors=logint(20,120);lr=loguniform(0.01,0.08);reg=loguniform(0.03,0.2)" \
        --also '[{}]' --include-best r1
    # BiasedMF and FunkSVD: the same two rounds with the wider SGD space.
    for data in ml-100k ml-latest-small; do
        $S biased-mf $data r1 --threads 1 $PLAIN --n-iter 10 --random "$SGD_SPACE"
        $S biased-mf $data r2 --threads 1 --n-iter 8 --random "$ADA_SPACE" \
            --also '[{}]' --include-best r1
        $S funk-svd $data r1 --threads 1 $PLAIN --param init_mean=0.0 --n-iter 10 \
            --random "$SGD_SPACE"
        $S funk-svd $data r2 --threads 1 --n-iter 8 --random "$ADA_SPACE" \
            --also '[{}]' --include-best r1
    done
}

other() {
    $S als ml-100k r1 --threads 1 --n-iter 10 --random \
        "n_factors=logint(8,60);n_epochs=int(10,25);reg=loguniform(0.05,0.3);reg_bias=loguniform(0.0005,0.5)"
    $S als ml-latest-small r1 --threads 1 --n-iter 10 --random \
        "n_factors=logint(5,100);n_epochs=int(8,25);reg=loguniform(0.03,0.4);reg_bias=loguniform(0.0005,0.5)"
    $S gd-mf ml-100k r1 --threads 1 --n-iter 10 --random \
        "n_factors=logint(20,150);n_epochs=int(80,200);lr=loguniform(0.05,0.2);reg=loguniform(0.05,0.3);reg_bias=loguniform(0.01,0.1)" \
        --also '[{}]'
    # BayesianMF is costly (a Gibbs sampler): small grids.
    $S bayes-mf ml-100k r1 --threads 1 --param n_samples=200 --param burn_in=100 \
        --grid "implicit=none,both;n_factors=10,20"
    $S bayes-mf ml-100k r2 --threads 1 --from-best r1 --grid "n_samples=400" \
        --include-best r1
    $S bayes-mf ml-latest-small r1 --threads 1 --param n_samples=200 --param burn_in=100 \
        --grid "implicit=none,both;n_factors=10,20"
}

previous() {
    # The final round of each: the presets these searches replace (found by earlier,
    # unrecorded 5-fold searches on the same training parts) against the new winner, on
    # the same folds. (BayesianMF's previous presets differ only in chain length.)
    OLD_SGD='"optimizer": "sgd", "init_std": 0.1, "patience": null'
    $S svdpp ml-100k r3 --threads 1 --include-best r2 --configs \
        "[{\"n_factors\": 80, \"n_epochs\": 65, \"lr\": 0.0047, \"reg\": 0.1, \"reg_bias\": 0.0075, \"reg_implicit\": 0.011, $OLD_SGD}]"
    $S svdpp ml-latest-small r3 --threads 1 --include-best r2 --configs \
        "[{\"n_factors\": 99, \"n_epochs\": 74, \"lr\": 0.006, \"reg\": 0.15, \"reg_bias\": 0.0082, \"reg_implicit\": 0.015, $OLD_SGD}]"
    $S als ml-100k r2 --threads 1 --include-best r1 --configs \
        '[{"n_factors": 34, "n_epochs": 16, "reg": 0.14, "reg_bias": 0.0013}]'
    $S als ml-latest-small r2 --threads 1 --include-best r1 --configs \
        '[{"n_factors": 79, "n_epochs": 18, "reg": 0.099, "reg_bias": 0.094}]'
    for data in ml-100k ml-latest-small; do
        $S biased-mf $data r3 --threads 1 --include-best r2 --configs \
            "[{\"n_factors\": 200, \"n_epochs\": 80, \"lr\": 0.007, \"reg\": 0.082, $OLD_SGD}]"
    done
    $S funk-svd ml-100k r3 --threads 1 --include-best r2 --configs \
        "[{\"n_factors\": 58, \"n_epochs\": 70, \"lr\": 0.0058, \"reg\": 0.13, \"init_mean\": 0.0, $OLD_SGD}]"
    $S funk-svd ml-latest-small r3 --threads 1 --include-best r2 --configs \
        "[{\"n_factors\": 34, \"n_epochs\": 48, \"lr\": 0.014, \"reg\": 0.16, \"init_mean\": 0.0, $OLD_SGD}]"
    $S gd-mf ml-100k r2 --threads 1 --include-best r1 --configs \
        '[{"n_factors": 100, "n_epochs": 125, "lr": 0.1, "reg": 0.12, "reg_bias": 0.05}]'
}

case "${1:-all}" in
    sgd) sgd ;;
    other) other ;;
    previous) previous ;;
    all) sgd; other; previous ;;
    *) echo "usage: $0 [sgd|other|previous|all]" >&2; exit 2 ;;
esac
