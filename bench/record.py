#!/usr/bin/env python3
"""Append or replace benchmark rows in bench/results.json.

Usage: bench/record.py SCENARIO METRIC VALUE BASELINE UNIT COMMAND
A row with the same scenario, metric and date is replaced; others are kept, so results can be
compared over time. ratio = value / baseline (null when there is no baseline). Safe to call
from concurrent processes (file lock).
"""
import datetime
import fcntl
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results.json")


def main(argv):
    if len(argv) != 7:
        sys.exit(__doc__)
    scenario, metric, value, baseline, unit, command = argv[1:]
    value = float(value)
    baseline = None if baseline in ("", "null", "-") else float(baseline)
    row = {
        "scenario": scenario,
        "metric": metric,
        "value": value,
        "baseline": baseline,
        "ratio": (round(value / baseline, 4) if baseline else None),
        "unit": unit,
        "command": command,
        "date": datetime.date.today().isoformat(),
    }
    with open(RESULTS + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = []
        if os.path.exists(RESULTS):
            with open(RESULTS) as f:
                rows = json.load(f)
        rows = [r for r in rows if (r["scenario"], r["metric"], r["date"]) != (scenario, metric, row["date"])]
        rows.append(row)
        rows.sort(key=lambda r: (r["scenario"], r["metric"], r["date"]))
        tmp = RESULTS + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, RESULTS)
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv)
