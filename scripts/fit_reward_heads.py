"""Regenerate the shipped offline reward heads (src/paretohqd/assets/{harmless,helpful}_head.npz + .report.json).

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python scripts/fit_reward_heads.py

It fits each head with the default settings of ``paretohqd rewards fit`` (held-out fraction 0.2, seed 0, kind auto)
on the HH-RLHF pairs in ../shared/data/hh-rlhf (relative to the repository root; never copied into the repo). The
same command line for one head:

    paretohqd rewards fit --data ../shared/data/hh-rlhf/harmless.jsonl --output src/paretohqd/assets/harmless_head.npz

About two minutes per head on 2 CPU cores, nearly all of it MiniLM embedding.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
HEADS = {"harmless": "harmless.jsonl", "helpful": "helpful.jsonl"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/hh-rlhf",
                        help="folder with harmless.jsonl and helpful.jsonl, relative to the repository root")
    parser.add_argument("--only", choices=sorted(HEADS), help="regenerate one head only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    # Relative paths from the repository root keep the recorded sources free of this machine's absolute paths.
    os.chdir(REPO)
    sys.path.insert(0, str(REPO / "src"))
    from paretohqd.rewards.heads.fit import fit_and_save

    for name in [args.only] if args.only else list(HEADS):
        source = Path(args.data_dir) / HEADS[name]
        if not source.is_file():
            parser.error(f"{source} does not exist (run from a checkout next to ../shared/data)")
        output = Path("src/paretohqd/assets") / f"{name}_head.npz"  # = SHIPPED_HEADS[name] in this checkout
        report = fit_and_save([str(source)], str(output))
        print(f"{name}: {report['kind']} head, held-out accuracy {report['heldout_accuracy']:.4f} on "
              f"{report['n_heldout_pairs']} pairs (fit {report['fit_accuracy']:.4f}), "
              f"{report['head_bytes']} bytes, {report['seconds']['total']:.0f} s -> {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
