"""The CLI error boundary: every bad file, value, option and OS failure is one line on
stderr naming the file or flag and the fix, exit status 1 (usage errors 2), never a
traceback unless -vv."""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import mfrec
from mfrec.cli import main

from .conftest import read_members, write_members

RATINGS = b"1,10,4\n1,11,3\n2,10,5\n2,12,2\n3,11,4\n3,12,1\n4,10,3\n4,12,5\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_bytes):
    d = tmp_path_factory.mktemp("cli")
    model = d / "model.mfrec"
    model.write_bytes(tiny_bytes)
    meta, arrays = read_members(model)
    edited = d / "edited.mfrec"
    write_members(edited, meta, {**arrays, "a.user_bias_": arrays["a.user_bias_"] + 1}, "keep")
    nan = d / "nan.mfrec"
    factors = arrays["a.user_factors_"].copy()
    factors[0, 0] = np.nan
    write_members(nan, meta, {**arrays, "a.user_factors_": factors}, "new")
    oob = d / "oob.mfrec"
    write_members(oob, meta, {**arrays, "seen_indices": arrays["seen_indices"] + 50}, "new")
    contents = {
        "notes.txt": b"hello\n",
        "ratings.csv": RATINGS,
        "empty.csv": b"",
        "onecol.csv": b"10\n11\n",
        "utf16.csv": "10,5\n11,3\n".encode("utf-16"),
        "utf16-ratings.csv": RATINGS.decode().encode("utf-16"),
        "badrating.csv": b"10,5\n11,x\n",
        "fold.csv": b"10,5\n11,3\n",
        "fold-header.csv": b"item,rating\n10,5\n",
        "gz.csv": gzip.compress(RATINGS),
    }
    for name, data in contents.items():
        (d / name).write_bytes(data)
    os.mkfifo(d / "pipe.csv")
    (d / "folder").mkdir()
    return d


def run(args, files, *extra_env):
    runner = CliRunner()
    result = runner.invoke(main, [a.format(d=files) for a in args])
    return result


def _one_line_error(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.output
    assert lines[-1].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[-1]


# (id, arguments ({d} is the folder of the files), exit status, phrase of the error line
# -- or, for exit status 0, a phrase of the output)
CASES = [
    ("model-missing", "recommend {d}/absent.mfrec --user 1", 2, "does not exist"),
    ("model-is-text", "recommend {d}/notes.txt --user 1", 1, "not an mfrec model file"),
    ("model-is-pipe", "recommend {d}/pipe.csv --user 1", 1, "not a regular file"),
    ("model-edited", "recommend {d}/edited.mfrec --user 1", 1, "does not match its checksum"),
    ("model-nan", "recommend {d}/nan.mfrec --user 1", 1, "NaN or infinite"),
    ("model-seen-out-of-bounds", "recommend {d}/oob.mfrec --user 1", 1, "outside 0..4"),
    ("fold-in-empty", "recommend {d}/model.mfrec --ratings {d}/empty.csv", 1, "is empty"),
    ("fold-in-one-column", "recommend {d}/model.mfrec --ratings {d}/onecol.csv", 1,
     "line 1: expected two columns"),
    ("fold-in-utf16", "recommend {d}/model.mfrec --ratings {d}/utf16.csv", 1, "not UTF-8"),
    ("fold-in-bad-rating", "recommend {d}/model.mfrec --ratings {d}/badrating.csv", 1,
     "line 2: rating 'x' is not a number"),
    ("fold-in-folder", "recommend {d}/model.mfrec --ratings {d}/folder", 2, "is a directory"),
    ("fold-in-ok", "recommend {d}/model.mfrec --ratings {d}/fold.csv", 0, "new user with 2"),
    ("fold-in-header-ok", "recommend {d}/model.mfrec --ratings {d}/fold-header.csv", 0,
     "new user with 1"),
    ("out-json", "recommend {d}/model.mfrec --all-users --out {d}/recs.json", 1,
     "--out {d}/recs.json: unknown file type"),
    ("out-missing-folder", "recommend {d}/model.mfrec --all-users --out {d}/no/recs.csv", 1,
     "does not exist"),
    ("out-csv-ok", "recommend {d}/model.mfrec --all-users --out {d}/recs.csv", 0, "wrote"),
    ("user-and-all", "recommend {d}/model.mfrec --user 1 --all-users", 1, "not both"),
    ("no-user", "recommend {d}/model.mfrec", 1, "say whom to recommend for"),
    ("user-not-int", "recommend {d}/model.mfrec --user abc", 1, "user ids are integers"),
    ("n-zero", "recommend {d}/model.mfrec --user 1 -n 0", 2, "-n"),
    ("unknown-user-ok", "recommend {d}/model.mfrec --user 999", 0, "unknown user"),
    ("similar-unknown", "similar {d}/model.mfrec --item 999", 1, "unknown item id(s): 999"),
    ("similar-not-int", "similar {d}/model.mfrec --item x", 1, "item ids are integers"),
    ("train-ok", "train {d}/ratings.csv --param n_epochs=1 --out {d}/m1.mfrec", 0, "saved to"),
    ("train-gzip-named-csv", "train {d}/gz.csv --param n_epochs=1 --out {d}/m2.mfrec", 0,
     "saved to"),
    ("train-missing", "train {d}/absent.csv --out {d}/m.mfrec", 1, "neither a known dataset"),
    ("train-utf16", "train {d}/utf16-ratings.csv --out {d}/m.mfrec", 1, "UTF-16-LE"),
    ("train-pipe", "train {d}/pipe.csv --out {d}/m.mfrec", 1, "not a regular file"),
    ("train-empty", "train {d}/empty.csv --out {d}/m.mfrec", 1, "is empty"),
    ("train-model-as-data", "train {d}/model.mfrec --out {d}/m.mfrec", 1, "zip archive"),
    ("train-bad-param", "train {d}/ratings.csv --param n_factors=-1 --out {d}/m.mfrec", 1,
     "n_factors"),
    ("train-unknown-param", "train {d}/ratings.csv --param warp=1 --out {d}/m.mfrec", 1,
     "has no parameter 'warp'"),
    ("train-param-syntax", "train {d}/ratings.csv --param lr --out {d}/m.mfrec", 1,
     "--param expects NAME=VALUE"),
    ("train-unknown-model", "train {d}/ratings.csv --model nope --out {d}/m.mfrec", 1,
     "unknown model 'nope'"),
    ("train-scale-reversed", "train {d}/ratings.csv --scale 5,1 --out {d}/m.mfrec", 1,
     "low < high"),
    ("train-scale-text", "train {d}/ratings.csv --scale abc --out {d}/m.mfrec", 1,
     "--scale expects LOW,HIGH"),
    ("train-columns", "train {d}/ratings.csv --columns user,item --out {d}/m.mfrec", 1,
     "no rating column"),
    ("train-out-no-folder", "train {d}/ratings.csv --out {d}/no/m.mfrec", 1,
     "folder {d}/no does not exist"),
    ("train-out-is-folder", "train {d}/ratings.csv --out {d}/folder", 2, "is a directory"),
    ("train-duplicates-option", "train {d}/ratings.csv --duplicates first --out {d}/m", 2,
     "--duplicates"),
    ("train-sep-bad-escape", "train {d}/ratings.csv --sep \\x --out {d}/m.mfrec", 1,
     "--sep '\\\\x' is not a valid separator"),
    ("unknown-option", "train {d}/ratings.csv --bogus", 2, "No such option"),
    ("unknown-command", "frobnicate", 2, "No such command"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "status", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cli_call(files, args, status, phrase):
    result = run(args.split(), files)
    phrase = phrase.format(d=files)
    assert result.exit_code == status, result.output
    assert isinstance(result.exception, SystemExit) or result.exception is None
    if status == 0:
        assert phrase in result.stdout
    else:
        assert phrase in _one_line_error(result)


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.mark.parametrize(
    ("error", "phrase"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "m.mfrec"),
         "m.mfrec: Permission denied; check its permissions"),
        (OSError(errno.ENOSPC, "No space left on device", "m.mfrec"),
         "m.mfrec: No space left on device; free some disk space"),
        (OSError(errno.EROFS, "Read-only file system", "m.mfrec"), "write to a writable place"),
    ],
    ids=["permission", "disk-full", "read-only"],
)  # fmt: skip
def test_os_errors_are_one_line(files, monkeypatch, error, phrase):
    monkeypatch.setattr(os, "replace", _raise(error))
    result = run(
        f"train {files}/ratings.csv --param n_epochs=1 --out {files}/m.mfrec".split(), files
    )
    assert result.exit_code == 1
    assert phrase in _one_line_error(result)


def test_a_bug_is_one_line_and_vv_shows_the_traceback(files, monkeypatch):
    monkeypatch.setattr(mfrec, "load", _raise(RuntimeError("boom")))
    result = run(f"recommend {files}/model.mfrec --user 1".split(), files)
    assert result.exit_code == 1
    line = _one_line_error(result)
    assert "unexpected RuntimeError: boom" in line and "-vv" in line
    result = run(f"-vv recommend {files}/model.mfrec --user 1".split(), files)
    assert isinstance(result.exception, RuntimeError)


def test_real_process_prints_no_traceback(files):
    """The installed entry point, in a process of its own: one line, exit status 1."""
    result = subprocess.run(
        [sys.executable, "-m", "mfrec.cli", "recommend", f"{files}/oob.mfrec", "--user", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "seen_indices" in result.stderr
