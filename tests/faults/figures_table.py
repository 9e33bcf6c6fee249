#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns the FIGURES lines of a faults run into docs/reliability.md's table.

  CUTOVER_FAULTS_FIGURES=run.jsonl /usr/bin/python3 -m pytest tests/faults
  python3 tests/faults/figures_table.py run.jsonl
"""
import json
import sys

COLUMNS = ("fault", "how it was injected", "load at the time", "requests sent",
           "requests failed", "plans rejected", "crashes")


def main(path):
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            print("| %s | %s | %s | %d | %d | %d | %d |" % (
                r["case"], r["injected"], r["load"], r["sent"], r["failed"], r["rejected"],
                r["crashes"]))


if __name__ == "__main__":
    main(sys.argv[1])
