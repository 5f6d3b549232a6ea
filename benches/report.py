#!/usr/bin/env python3
"""Prints the results table from criterion's estimates and the allocation report.

Reads target/criterion/<group>/<case>/new/{benchmark,estimates}.json (written by
`cargo bench`) and target/palisade-allocs.tsv (written by the allocation tests when
PALISADE_ALLOC_REPORT is set). In every group the case whose name starts with `bare` is
the baseline measured in the same run; the first case whose name starts with `palisade`
is what the peers are compared with.

Usage: python3 benches/report.py [--markdown]
"""
import json
import os
import sys
from collections import OrderedDict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRITERION = os.path.join(ROOT, "target", "criterion")
ALLOCS = os.path.join(ROOT, "target", "palisade-allocs.tsv")


def fmt_time(ns):
    if ns < 1_000:
        return f"{ns:.1f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def load():
    groups = OrderedDict()
    if not os.path.isdir(CRITERION):
        return groups
    for dirpath, _dirs, files in sorted(os.walk(CRITERION)):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        # The median is robust against the scheduler noise of a shared machine.
        ns = est["median"]["point_estimate"]
        case = bench["function_id"] or ""
        if bench.get("value_str"):
            case = f"{case}/{bench['value_str']}" if case else bench["value_str"]
        groups.setdefault(bench["group_id"], []).append((case, ns))
    return groups


def main():
    markdown = "--markdown" in sys.argv
    groups = load()
    if not groups:
        print("no criterion results under target/criterion: run benches/run.sh first", file=sys.stderr)
        return 1
    rows = []
    for group, cases in groups.items():
        bare = next((ns for c, ns in cases if c.startswith("bare")), None)
        ours = next((ns for c, ns in cases if c.startswith("palisade")), None)
        for case, ns in sorted(cases, key=lambda x: (not x[0].startswith("bare"), not x[0].startswith("palisade"), x[0])):
            vs_bare = f"{ns / bare:.2f}×" if bare else "-"
            over = f"{ns - bare:+.1f} ns" if bare and not case.startswith("bare") else "-"
            vs_ours = "-"
            if ours and not case.startswith(("bare", "palisade")):
                vs_ours = f"{ns / ours:.2f}×"
            rows.append((group, case, fmt_time(ns), vs_bare, over, vs_ours))
    head = ("group", "case", "median", "× bare", "overhead", "× palisade")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths))
        print(line(head))
        print("  ".join("-" * w for w in widths))
        last = None
        for r in rows:
            if last is not None and r[0] != last:
                print()
            print(line(r))
            last = r[0]
    if os.path.exists(ALLOCS):
        print()
        print("allocations per call" if not markdown else "| allocation case | per call |\n|---|---|")
        seen = OrderedDict()
        with open(ALLOCS) as f:
            for ln in f:
                parts = ln.rstrip("\n").split("\t")
                if len(parts) == 2:
                    seen[parts[0]] = parts[1]
        for case, n in seen.items():
            print(f"| {case} | {n} |" if markdown else f"  {case:<60} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
