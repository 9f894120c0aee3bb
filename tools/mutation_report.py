"""Kill rate per module of the last `mutmut run` (`make mutation`), from mutmut's `mutants/**/*.py.meta` files.

    python tools/mutation_report.py [--out docs/data/mutation.json] [--survivors]

A mutant is a one-line fault; it is killed when a test fails (or times out) with it. `docs/testing.md` lists
(as "- `NAME`: why") the survivors judged equivalent, left out of the rate, and those killed by a test that
mutation runs deselect for speed, counted as killed.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

REPO = Path(__file__).resolve().parents[1]
#: A listed mutant in docs/testing.md: "- `rllib_mag.learning.ppo.x_ppo_update__mutmut_3`: why".
LISTED = re.compile(r"^- `(?P<name>[\w.]+__mutmut_\d+)`")
#: The headings of docs/testing.md whose lists mark equivalent and deselected-test-killed mutants.
SECTIONS = {"### Survivors judged equivalent": "equivalent", "### Killed by a deselected test": "killed"}


def listed_mutants(doc: Path = REPO / "docs" / "testing.md") -> dict[str, str]:
    """`{mutant name: "equivalent" | "killed"}` from the lists under `SECTIONS`' headings."""
    listed, section = {}, None
    for line in doc.read_text().splitlines():
        if line.startswith("#"):
            section = SECTIONS.get(line.strip())
        elif section and (match := LISTED.match(line)):
            listed[match["name"]] = section
    return listed


def results(mutants: Path = REPO / "mutants") -> dict[str, dict[str, str]]:
    """`{module: {mutant name: status}}` for every mutated file."""
    by_module = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        source = meta.relative_to(mutants).with_suffix("").with_suffix("")
        module = ".".join(source.parts)
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        by_module[module] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return by_module


def summary(by_module: dict[str, dict[str, str]], listed: dict[str, str]) -> dict[str, dict[str, float]]:
    rows = {}
    for module, statuses in by_module.items():
        statuses = {name: "killed" if listed.get(name) == "killed" and status == "survived" else status
                    for name, status in statuses.items()}
        counts = Counter(status for name, status in statuses.items() if listed.get(name) != "equivalent")
        killed = counts["killed"] + counts["timeout"]
        judged = killed + counts["survived"]
        rows[module] = {"mutants": len(statuses),
                        "equivalent": sum(listed.get(name) == "equivalent" for name in statuses),
                        "killed": killed, "survived": counts["survived"], "no_tests": counts["no tests"],
                        "not_checked": counts["not checked"],
                        "kill_rate": round(killed / judged, 4) if judged else None}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()
    by_module, listed = results(), listed_mutants()
    rows = {module: row for module, row in summary(by_module, listed).items() if row["mutants"]}
    print(f"{'module':45s} {'mutants':>8s} {'equiv':>6s} {'killed':>7s} {'survived':>9s} {'no tests':>9s} "
          f"{'kill rate':>9s}")
    for module, row in rows.items():
        rate = "not run" if row["kill_rate"] is None else f"{row['kill_rate']:.1%}"
        print(f"{module:45s} {row['mutants']:8d} {row['equivalent']:6d} {row['killed']:7d} {row['survived']:9d} "
              f"{row['no_tests']:9d} {rate:>9s}")
    totals = {key: sum(row[key] for row in rows.values()) for key in ("killed", "survived")}
    judged = totals["killed"] + totals["survived"]
    print(f"{'all':45s} {'':8s} {'':6s} {totals['killed']:7d} {totals['survived']:9d} {'':9s} "
          f"{totals['killed'] / max(judged, 1):9.1%}")
    if args.survivors:
        for statuses in by_module.values():
            print("\n".join(name for name, status in statuses.items() if status == "survived" and name not in listed))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
