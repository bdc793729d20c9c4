"""How fast ``data.adapter: trl`` turns conversations into samples, against the same rendering done row by row in
Python (what a per-example ``datasets.map`` does), on synthetic conversations of 1-3 turns.

    python bench/trl_formats_speed.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.json as paj

from paretohqd.data.adapters import ASSISTANT_MARKER, HUMAN_MARKER, SYSTEM_MARKER
from paretohqd.data.trl_formats import trl_samples

MARKERS = {"system": SYSTEM_MARKER, "user": HUMAN_MARKER, "assistant": ASSISTANT_MARKER}


def write_conversations(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        for i in range(rows):
            messages = []
            for turn in range(int(rng.integers(1, 4))):
                messages += [{"role": "user", "content": f"question {i} {turn} " * 5},
                             {"role": "assistant", "content": f"answer {i} {turn} " * 8}]
            handle.write(json.dumps({"messages": messages}) + "\n")


def row_by_row(table: pd.DataFrame) -> pd.DataFrame:
    """The samples a per-example conversion makes (no checks of roles, order or types)."""
    prompts, replies = [], []
    for messages in table["messages"].to_list():
        prompts.append("".join(f"{MARKERS[m['role']]} {m['content']}" for m in messages[:-1]) + ASSISTANT_MARKER)
        replies.append(messages[-1]["content"])
    return pd.DataFrame({"id": [f"bench:{i}" for i in range(len(table))], "prompt": prompts, "response": replies})


def best_of(repeats: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conversations.jsonl"
        write_conversations(path, args.rows)
        reading, table = best_of(args.repeats, lambda: paj.read_json(path).to_pandas())
    ours, samples = best_of(args.repeats, lambda: trl_samples(table, "bench", "bench", None))
    python, baseline = best_of(args.repeats, lambda: row_by_row(table))
    assert samples[["id", "prompt", "response"]].equals(baseline)
    print(f"{args.rows:,} conversations of 1-3 turns, best of {args.repeats}: reading the JSONL {reading:.3f} s; "
          f"into samples with every row checked (Arrow) {ours:.3f} s; the same samples row by row in Python, "
          f"unchecked, {python:.3f} s (ratio {ours / python:.2f}); identical samples")


if __name__ == "__main__":
    main()
