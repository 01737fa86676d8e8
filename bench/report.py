"""Paste the benchmark tables from bench/results/*.json into README.md.

    python bench/report.py

Each benchmark writes a ``markdown`` field; this script replaces the README text between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` with it (and the measurement line).
The README's numbers therefore always come from a bench run, never from typing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    for result in sorted((ROOT / "bench" / "results").glob("*.json")):
        data = json.loads(result.read_text())
        name = data["benchmark"]
        pattern = re.compile(
            rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.S
        )
        if not pattern.search(readme):
            print(f"README has no <!-- bench:{name} --> section; skipped")
            continue
        m = data["machine"]
        stamp = (
            f"_Measured {data['measured']} by `{data['command']}` on {m['cpu_count']} cores "
            f"({m['processor']}), Python {m['python']}, numba {m['numba']}._\n"
        )
        block = data["markdown"].rstrip() + "\n\n" + stamp
        readme = pattern.sub(lambda mt, block=block: mt.group(1) + block + mt.group(2), readme)
        print(f"updated {name}")
    readme_path.write_text(readme)


if __name__ == "__main__":
    main()
