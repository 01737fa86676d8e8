"""The size of the corpus, by expected outcome (the figures of the closing note)."""

from __future__ import annotations

from . import test_cli_boundary as cli
from . import test_files as files
from . import test_model_files as model_files
from . import test_values_and_calls as values


def corpus_counts() -> dict[str, int]:
    """Cases by the outcome they assert: a clear error, or correct behaviour."""
    cli_errors = [c for c in cli.CASES if c[2] != 0]
    errors = (
        len(files.ERRORS)
        + 3  # pipe, device, folder (+ missing file) in test_files
        + len(values.VALUES)
        + 3  # from_frame cases
        + len(values.PARAMS)
        + len(values.CALLS)
        + 3  # unfitted predict/recommend, unknown model
        + len(model_files.REFUSED)
        + model_files.PATH_CASES
        + 3  # missing model file, deeply nested metadata, compressed members
        + len(cli_errors)
        + 3  # OS errors at the CLI
        + 2  # a bug at the CLI, in process and in a real process
    )
    correct = (
        len(files.READ)
        + 2  # typo warning with its line, string ids without warning
        + 1  # values read correctly
        + 1  # unknown-id policy
        + len(model_files.ACCEPTED)
        + 1  # old file logged, not refused
        + len(cli.CASES)
        - len(cli_errors)
        + 5  # faults: kill -9, stale-temporary pattern, failed write, umask, kept mode
    )
    return {"clear error": errors, "correct behaviour": correct}


def test_corpus_has_at_least_150_cases():
    counts = corpus_counts()
    assert sum(counts.values()) >= 150, counts
