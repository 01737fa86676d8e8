"""The default model, in a module light enough for the CLI to import at startup."""

#: The model ``mfrec train`` / ``mfrec evaluate`` (and ``mfrec demo``) fit when no
#: ``--model`` is given; re-exported as ``mfrec.models.DEFAULT_MODEL``. Chosen on the
#: evaluation panel by the rule of ``bench/defaults.py`` (robustness first, then
#: accuracy, within a time budget); see docs/defaults.md.
#: ``tests/models/test_default_model.py`` checks it against the choice recorded in
#: ``bench/results/defaults.json``.
DEFAULT_MODEL = "biased-mf"
