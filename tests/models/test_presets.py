"""Every preset is tied to the recorded search rounds it came from.

``PRESET_SOURCES`` names, per preset, the command and the JSON record of each search
round (``bench/preset_search.py``). These tests read those records: each must exist,
describe this model and data, say its test part was not scored, and the preset must be
the (rounded) winner of its final round -- so a preset edited by hand, a record
overwritten by another search, or a round run on other data fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mfrec.models import MODELS
from mfrec.models.presets import (
    PRESET_SOURCES,
    PRESETS,
    SEARCHED_WITHOUT,
    SearchRound,
    rounded,
)

ROOT = Path(__file__).resolve().parents[2]
KEYS = sorted(PRESETS)


def _record(search_round: SearchRound) -> dict:
    path = ROOT / search_round.record
    assert path.is_file(), f"{search_round.record} is missing"
    return json.loads(path.read_text())


def test_every_preset_has_recorded_rounds():
    assert set(PRESET_SOURCES) == set(PRESETS)
    for key in KEYS:
        rounds = PRESET_SOURCES[key]
        assert rounds and all(isinstance(r, SearchRound) for r in rounds), key


@pytest.mark.parametrize("key", KEYS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_rounds_describe_this_preset_and_never_score_a_test_part(key):
    model, dataset = key
    for search_round in PRESET_SOURCES[key]:
        record = _record(search_round)
        assert (record["model"], record["dataset"]) == key
        assert record["data"]["test_part_scored"] is False
        assert record["script"] == "bench/preset_search.py"
        # The command recorded beside the preset is the one that wrote the record (the
        # record keeps the arguments, not the shell's quotes).
        words = search_round.command.replace("'", "").split()
        assert words[:5] == ["python", "bench/preset_search.py", model, dataset, record["round"]]
        assert record["command"].split()[1:] == words[1:]
        # Every trial has its per-fold validation scores, and the recorded winner is
        # the lowest mean among them.
        trials = record["trials"]
        assert trials and all(len(t["fold_rmse"]) == record["folds"] for t in trials)
        for t in trials:
            assert math.isclose(t["mean_rmse"], sum(t["fold_rmse"]) / len(t["fold_rmse"]))
        best = min(trials, key=lambda t: (t["mean_rmse"], t["index"]))
        assert record["best"]["index"] == best["index"]
        assert record["best"]["mean_rmse"] == best["mean_rmse"]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_preset_is_the_rounded_winner_of_its_final_round(key):
    record = _record(PRESET_SOURCES[key][-1])
    # What the winning model was run with: the search's base settings, the winner's values.
    winner = {**record["base_params"], **record["best"]["params"]}
    params = PRESETS[key]
    for name in record["best"]["params"]:
        assert name in params, f"{key}: the winner's {name} is not in the preset"
    for name, value in params.items():
        if name not in winner and name in SEARCHED_WITHOUT:
            # added to the model after the rounds ran: pinned to what they measured
            assert value == SEARCHED_WITHOUT[name], (key, name, value)
            continue
        assert name in winner, f"{key}: {name} was not part of the search"
        assert value == rounded(winner[name]), (key, name, value, winner[name])
    for name, value in SEARCHED_WITHOUT.items():
        if name in MODELS[key[0]].param_defaults() and name not in winner:
            assert params.get(name) == value, f"{key}: {name} must be pinned to {value}"
    MODELS[key[0]](**params)._validate_params()


def test_rounded_keeps_two_significant_digits():
    assert rounded(0.006564967568069751) == 0.0066
    assert rounded(0.1514166448160547) == 0.15
    assert rounded(54) == 54 and rounded("sgd") == "sgd" and rounded(None) is None
    assert rounded(True) is True
