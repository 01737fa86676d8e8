"""The README's benchmark sections are exactly what bench/report.py renders from the JSON.

No number in those sections is typed by hand: each ``<!-- bench:NAME -->`` block is either
the rendering of ``bench/results/NAME.json`` (stamped with the commit that produced it) or,
for a result that is not current, the "pending" notice that shows no numbers. Whether a
stamped result is still current (``git diff SHA HEAD -- src/mfrec bench/<script>``) is
``python bench/report.py --check``'s job: it changes with every commit, this test does not.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _report()
RESULTS = {data["benchmark"]: data for data in report.load_results()}
SECTIONS = re.findall(r"<!-- bench:([\w-]+) -->", README)


def test_every_section_has_a_result_and_every_result_a_section():
    assert SECTIONS, "README has no bench sections"
    assert sorted(SECTIONS) == sorted(set(SECTIONS)), "a bench section appears twice"
    assert set(SECTIONS) == set(RESULTS), (
        f"sections without a result: {set(SECTIONS) - set(RESULTS)}; "
        f"results without a section: {set(RESULTS) - set(SECTIONS)}"
    )


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_section_is_rendered_from_its_result(name):
    data = RESULTS[name]
    text = report.section_pattern(name).search(README).group(2)
    allowed = [report.pending(data)]
    if (data.get("code") or {}).get("sha"):
        allowed.append(report.render(data))
    assert text in allowed, (
        f"README's bench:{name} section differs from bench/results/{name}.json; "
        "run `python bench/report.py` (never edit the section by hand)"
    )


def test_measured_numbers_appear_only_inside_generated_sections():
    # The "How fast, how accurate" section claims every number in it comes from a script:
    # outside the generated blocks it may name datasets and folds (ML-100K, u1..u5), but
    # no measurement (decimals, ratios, seconds, percentages, rows per second).
    section = README.split("## How fast, how accurate", 1)[1].split("\n## ", 1)[0]
    for name in SECTIONS:
        section = report.section_pattern(name).sub("", section)
    measured = re.compile(r"\d+\.\d+|\b\d+(\.\d+)?x\b|\d+ ?%|\b\d+ ?s\b|\d+(\.\d+)?M\b")
    lines = [line for line in section.splitlines() if not line.startswith("#")]  # headings
    typed = [line for line in lines if measured.search(line)]
    assert not typed, f"hand-typed measurements in a generated section: {typed}"


def test_pending_and_stale_results_show_no_numbers(tmp_path):
    data = {
        "benchmark": "demo",
        "measured": "2026-01-01 00:00:00",
        "command": "python demo.py",
        "markdown": "| a |\n|---|\n| 0.9123 |",
    }
    assert report.staleness(data).startswith("unstamped")
    assert "0.9123" not in report.pending(data)
    readme = "x\n<!-- bench:demo -->\nold 0.9999\n<!-- /bench:demo -->\ny\n"
    updated, messages = report.update(readme, [data], {"demo": report.staleness(data)})
    assert "0.99" not in updated and "0.91" not in updated and "Pending" in updated
    assert "NOT pasted, unstamped" in messages[0]
    # A result measured with the script or the library modified is refused.
    data["code"] = {"sha": "0" * 40, "dirty": True, "dirty_files": ["src/mfrec/models/sgd.py"]}
    assert "uncommitted changes to src/mfrec/models/sgd.py" in report.staleness(data)
    data["code"]["dirty_files"] = ["README.md"]
    assert "not in this repository" in report.staleness(data)


def test_staleness_compares_the_stamped_commit_with_head():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    last = git("log", "-1", "--format=%H", "--", "src/mfrec").stdout.strip()
    parent = git("rev-parse", f"{last}^").stdout.strip() if last else ""
    if not parent:
        pytest.skip("needs a git checkout with history (src/mfrec's last change and its parent)")
    code = {"dirty": False, "dirty_files": []}
    data = {"benchmark": "frontier", "script": "bench/frontier.py", "measured": "x"}
    data["code"] = {**code, "sha": git("rev-parse", "HEAD").stdout.strip()}
    assert report.staleness(data) is None
    data["code"] = {**code, "sha": parent}
    assert "older than the code" in report.staleness(data)


def test_staleness_follows_the_files_the_run_imported():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    last = git("log", "-1", "--format=%H", "--", "src/mfrec").stdout.strip()
    parent = git("rev-parse", f"{last}^").stdout.strip() if last else ""
    if not parent:
        pytest.skip("needs a git checkout with history (src/mfrec's last change and its parent)")
    changed = git("diff", "--name-only", parent, "HEAD", "--", "src/mfrec").stdout.split()
    untouched = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "src" / "mfrec").rglob("*.py")
        if str(p.relative_to(ROOT)) not in changed
    )
    assert changed and untouched
    moved = git("diff", "--name-only", parent, "HEAD", "--", "bench").stdout.split()
    scripts = sorted(
        f"bench/{p.name}"
        for p in (ROOT / "bench").glob("*.py")
        if f"bench/{p.name}" not in moved and not report.SPAWNS.search(p.read_text())
    )
    if not scripts:
        pytest.skip("every in-process bench script changed since src/mfrec's last change")
    script = scripts[0]
    data = {"benchmark": Path(script).stem, "script": script, "measured": "x"}
    data["code"] = {"sha": parent, "dirty": False, "dirty_files": []}
    # A run that imported only files unchanged since its commit is current ...
    data["sources"] = [untouched[0]]
    assert report.dependencies(data) == sorted({script, *data["sources"]})
    assert report.staleness(data) is None
    # ... one that imported a changed file is not, and names it.
    data["sources"] = [untouched[0], changed[0]]
    assert changed[0] in report.staleness(data)
    # Uncommitted changes count only where the run's code lives.
    data["sources"] = [untouched[0]]
    data["code"] = {"sha": parent, "dirty": True, "dirty_files": [changed[0]]}
    assert report.staleness(data) is None
    data["code"]["dirty_files"] = [untouched[0]]
    assert "uncommitted changes to " + untouched[0] in report.staleness(data)
    # A result without ``sources`` (stamped before they existed) depends on all of src/mfrec,
    # and so does one whose script starts processes (code may run outside what it imported).
    del data["sources"]
    assert report.dependencies(data) == sorted([script, "src/mfrec"])
    data["sources"] = [untouched[0]]
    data["script"] = data["benchmark"] = "bench/serve.py"
    assert report.dependencies(data) == ["bench/serve.py", "src/mfrec"]


def test_a_result_records_the_library_files_its_run_imported():
    import sys

    import mfrec.models  # noqa: F401  (what a bench imports)

    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "_common.py")
    common = importlib.util.module_from_spec(spec)
    sys.modules["bench_common"] = common
    try:
        spec.loader.exec_module(common)
        sources = common.imported_sources()
    finally:
        del sys.modules["bench_common"]
    assert "bench/_common.py" in sources
    assert "src/mfrec/__init__.py" in sources and "src/mfrec/models/sgd.py" in sources
    assert all(s.startswith(("src/mfrec/", "bench/")) for s in sources)
