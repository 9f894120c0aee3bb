"""Kill rate per module of the last `mutmut run` (`make mutation`), from mutmut's `mutants/**/*.py.meta` files.

    python tools/mutation_report.py [--out docs/data/mutation.json] [--survivors]

A mutant is a one-line fault; it is killed when a test fails (or times out) with it. The rate excludes the
mutants listed in `docs/testing.md` as equivalent (they change no behaviour a test could see).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

REPO = Path(__file__).resolve().parents[1]
#: Survivors judged equivalent: lines of docs/testing.md such as "- `rllib_mag.models.layers.x_mutmut_3`: why".
EQUIVALENT = re.compile(r"^- `(?P<name>[\w.]+__mutmut_\d+)`")


def equivalent_mutants(doc: Path = REPO / "docs" / "testing.md") -> set[str]:
    return {m["name"] for line in doc.read_text().splitlines() if (m := EQUIVALENT.match(line))}


def results(mutants: Path = REPO / "mutants") -> dict[str, dict[str, str]]:
    """`{module: {mutant name: status}}` for every mutated file."""
    by_module = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        source = meta.relative_to(mutants).with_suffix("").with_suffix("")
        module = ".".join(source.parts)
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        by_module[module] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return by_module


def summary(by_module: dict[str, dict[str, str]], equivalent: set[str]) -> dict[str, dict[str, float]]:
    rows = {}
    for module, statuses in by_module.items():
        counts = Counter(status for name, status in statuses.items() if name not in equivalent)
        killed = counts["killed"] + counts["timeout"]
        judged = killed + counts["survived"]
        rows[module] = {"mutants": len(statuses), "equivalent": sum(name in equivalent for name in statuses),
                        "killed": killed, "survived": counts["survived"], "no_tests": counts["no tests"],
                        "not_checked": counts["not checked"],
                        "kill_rate": round(killed / judged, 4) if judged else float("nan")}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()
    by_module, equivalent = results(), equivalent_mutants()
    rows = summary(by_module, equivalent)
    print(f"{'module':45s} {'mutants':>8s} {'equiv':>6s} {'killed':>7s} {'survived':>9s} {'no tests':>9s} "
          f"{'kill rate':>9s}")
    for module, row in rows.items():
        print(f"{module:45s} {row['mutants']:8d} {row['equivalent']:6d} {row['killed']:7d} {row['survived']:9d} "
              f"{row['no_tests']:9d} {row['kill_rate']:9.1%}")
    if args.survivors:
        for statuses in by_module.values():
            print("\n".join(name for name, status in statuses.items()
                            if status == "survived" and name not in equivalent))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
