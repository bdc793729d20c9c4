"""The docs' and README's front picture, drawn from a finished run's ``eval/metrics.json`` (nothing is rerun).

    python scripts/front_picture.py runs/demo docs/assets/front.png

Each trained preference's mean raw reward vector on the held-out prompts, labelled by its weights, and the base
model as a star; the title gives the hypervolume above the reference point the run declared before training,
beside the base model's. Uses the same plotting code as every run's ``eval/front.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from paretohqd.plots import plot_front


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument("output", type=Path, help="the PNG to write")
    args = parser.parse_args(argv)
    metrics = json.loads((args.run / "eval" / "metrics.json").read_text())
    points = np.array([p["mean_rewards"] for p in metrics["preferences"]], dtype=np.float64)
    labels = ["(" + ", ".join(f"{w:g}" for w in p["weights"]) + ")" for p in metrics["preferences"]]
    base = np.array(metrics["base"]["mean_rewards"], dtype=np.float64) if metrics.get("base") else None
    title = (f"{metrics['method']}: {len(points)} preferences, hypervolume {metrics['hypervolume_raw_ref']:.3f} "
             f"(base model {metrics['base_hypervolume_raw_ref']:.3f})" if base is not None
             else f"{metrics['method']}: {len(points)} preferences, hypervolume {metrics['hypervolume_raw_ref']:.3f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot_front(points, labels, metrics["objectives"], args.output, title, base=base)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB) from {args.run / 'eval' / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
