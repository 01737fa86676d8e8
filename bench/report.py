"""Paste the benchmark tables from bench/results/*.json into README.md -- current ones only.

    python bench/report.py            # rewrite README.md's bench sections
    python bench/report.py --check    # change nothing; exit 1 if anything is stale or unpasted

Each benchmark writes a ``markdown`` field; this script replaces the README text between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` with it and a line saying when, by
which command, at which commit and under what load it was measured. The README's numbers
therefore always come from a bench run, never from typing (``tests/test_readme.py``
re-renders the sections and fails on any difference).

A result is pasted only if it is *current*: it was stamped with a commit SHA
(``bench/_common.write_result`` does that), it was measured with no uncommitted change to
the code it depends on, and that code did not change between that commit and HEAD::

    git diff --quiet SHA HEAD -- <its dependencies>

Its dependencies are its script and the files its run imported (``sources``, stamped by
``write_result``: every loaded module of ``src/mfrec`` and ``bench/``), so a change to the
Spark engine does not stale the SGD benchmarks. A script that starts other processes
(``subprocess``, ``multiprocessing``, Spark) may run code its own process never imported,
and a result stamped before ``sources`` existed names none: for both the dependency is
the whole of ``src/mfrec``.

Otherwise the section says plainly that the result is pending (and which code the last
run measured), the reason is printed, and ``--check`` exits non-zero. The remedy is to
commit the code, rerun the benchmark, and run this script.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
#: The code every benchmark depends on, besides its own script.
SOURCE = "src/mfrec"


def load_results(folder: Path = RESULTS) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def script_of(data: dict[str, Any]) -> str:
    return data.get("script") or f"bench/{data['benchmark']}.py"


def section_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- bench:{re.escape(name)} -->\n)(.*?)(<!-- /bench:{re.escape(name)} -->)", re.S
    )


def render(data: dict[str, Any]) -> str:
    """The README block of a current result: its tables and notes, and how it was made."""
    m, code, load = data["machine"], data["code"], data["load_average"]
    dirty = " (uncommitted changes elsewhere)" if code["dirty"] else ""
    stamp = (
        f"_Measured {data['measured']} by `{data['command']}` at commit "
        f"{code['sha'][:10]}{dirty} on {m['cpu_count']} cores ({m['processor']}), "
        f"Python {m['python']}, numba {m['numba']}; load average "
        f"{load['start'][0]:.2f} at the start, {load['end'][0]:.2f} at the end._\n"
    )
    busiest = max(load["start"][0], load["end"][0])
    if busiest > m["cpu_count"]:
        stamp += (
            f"\n_Measured under contention: a load average of {busiest:.1f} on "
            f"{m['cpu_count']} cores means other processes competed for the CPU: the "
            "timings and speed-ups (not the accuracy figures) describe a busy machine, "
            "not a quiet one._\n"
        )
    return data["markdown"].rstrip() + "\n\n" + stamp


def pending(data: dict[str, Any]) -> str:
    """The README block of a result that is not current: no numbers, what to run."""
    sha = (data.get("code") or {}).get("sha")
    made = f"code at commit {sha[:10]}" if sha else "code of unrecorded version (unstamped)"
    return (
        f"_Pending: no current result. The last run (measured {data['measured']}, {made}) "
        f"is older than the code it describes, so its numbers are not shown; rerun "
        f"`python {script_of(data)}` and `python bench/report.py`._\n"
    )


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


#: A script that matches this may run library code in another process.
SPAWNS = re.compile(r"\b(subprocess|multiprocessing|Popen|pyspark|concurrent\.futures)\b")


def dependencies(data: dict[str, Any]) -> list[str]:
    """The paths whose change makes ``data`` stale (see the module docstring)."""
    script = script_of(data)
    sources = data.get("sources")
    try:
        spawns = bool(SPAWNS.search((ROOT / script).read_text()))
    except OSError:
        spawns = True
    if sources is None or spawns:
        return sorted({script, SOURCE})
    return sorted({script, *sources})


def staleness(data: dict[str, Any]) -> str | None:
    """Why ``data`` may not be pasted into the README, or None if it is current."""
    code = data.get("code") or {}
    sha = code.get("sha")
    if not sha:
        return "unstamped: it records no commit SHA (measured before results were stamped)"
    paths = dependencies(data)
    touched = [
        f
        for f in code.get("dirty_files", [])
        if any(f == p or f.startswith(p.rstrip("/") + "/") for p in paths)
    ]
    if touched:
        return f"measured with uncommitted changes to {', '.join(touched)}"
    try:
        known = _git("cat-file", "-e", f"{sha}^{{commit}}")
    except OSError:
        return "git is not available to compare its commit with HEAD"
    if known.returncode != 0:
        return f"its commit {sha[:10]} is not in this repository"
    diff = _git("diff", "--name-only", sha, "HEAD", "--", *paths)
    if diff.returncode != 0:
        return f"git diff {sha[:10]} HEAD failed: {diff.stderr.strip()}"
    changed = diff.stdout.split()
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        return f"older than the code: {shown} changed between {sha[:10]} and HEAD"
    return None


def update(readme: str, results: list[dict[str, Any]], stale: dict[str, str | None]):
    """The README with every section re-rendered, and the messages to print."""
    messages = []
    for data in results:
        name = data["benchmark"]
        pattern = section_pattern(name)
        if not pattern.search(readme):
            messages.append(f"{name}: README has no <!-- bench:{name} --> section; skipped")
            continue
        reason = stale[name]
        block = pending(data) if reason else render(data)
        messages.append(f"{name}: " + (f"NOT pasted, {reason}" if reason else "pasted"))
        readme = pattern.sub(lambda mt, b=block: mt.group(1) + b + mt.group(3), readme)
    return readme, messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a result is not current or README.md is out of date",
    )
    args = parser.parse_args(argv)
    results = load_results()
    stale = {data["benchmark"]: staleness(data) for data in results}
    before = README.read_text()
    after, messages = update(before, results, stale)
    print("\n".join(messages))
    if args.check:
        problems = [name for name, reason in stale.items() if reason]
        if after != before:
            problems.append("README.md (run python bench/report.py)")
        if problems:
            print(f"not current: {', '.join(problems)}", file=sys.stderr)
            return 1
        return 0
    if after != before:
        tmp = README.with_suffix(".md.tmp")
        tmp.write_text(after)
        tmp.replace(README)
    return 0


if __name__ == "__main__":
    sys.exit(main())
