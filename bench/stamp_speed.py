"""What telling a copied run's outputs by their bytes costs: the stamp digest (xxHash XXH3-128) against sha256 on
a 1 GiB file, read from the page cache (what a rerun right after a copy sees) — the cost per GB the runner pays
for each output whose modification time moved.

    python bench/stamp_speed.py [--gib 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from paretohqd.io import file_sha256, file_stamp_digest


def best_seconds(function, path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size = int(args.gib * 2**30)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.bin"
        with open(path, "wb") as handle:
            block = os.urandom(1 << 24)
            for _ in range(size // len(block)):
                handle.write(block)
        file_stamp_digest(path)  # into the page cache
        stamp = best_seconds(file_stamp_digest, path, args.repeats)
        sha = best_seconds(file_sha256, path, args.repeats)
    gb = size / 1e9
    print(f"file: {size / 2**30:.2f} GiB, page cache, best of {args.repeats}")
    print(f"stamp digest (xxh3_128): {stamp:.3f} s = {stamp / gb:.3f} s per GB ({gb / stamp:.1f} GB/s)")
    print(f"sha256:                  {sha:.3f} s = {sha / gb:.3f} s per GB ({gb / sha:.1f} GB/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
