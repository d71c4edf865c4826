"""Benchmark: comparing campaigns with 1,000 trials in total (synthetic records), and the HTML comparison.

    python bench/compare_time.py [--trials 1000] [--campaigns 4]

Target (issue 3): the comparison table and diff of 1,000 trials in <= 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hpo.analysis.compare import compare  # noqa: E402
from hpo.analysis.html_report import render  # noqa: E402
from tests.synthetic import write_campaign  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--campaigns", type=int, default=4)
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        names = [f"c{i}" for i in range(args.campaigns)]
        for i, name in enumerate(names):
            write_campaign(ws, name, args.trials // args.campaigns, seed=i, n_failed=3)
        start = time.perf_counter()
        summary, diff = compare(names, ws)
        table_s = time.perf_counter() - start
        start = time.perf_counter()
        page = render(names, ws)
        html_s = time.perf_counter() - start
        print(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        print(f"\n{len(diff)} settings differ")
        print(
            f"compare {args.trials} trials in {args.campaigns} campaigns: {table_s:.2f} s "
            f"(target 2 s: {table_s / 2.0:.2f} of budget)"
        )
        print(f"HTML comparison ({len(page) / 1e6:.1f} MB): {html_s:.2f} s")
    finally:
        shutil.rmtree(ws)


if __name__ == "__main__":
    main()
