"""How much of a run's held-out front is reply length: per model, its mean reward on each objective, its mean reply
length in tokens, the share of replies that hit ``max_new_tokens``, and its mean residual after regressing each
objective on log(tokens) over every reply of the run (base model included). A model that beats the base on an
objective only by writing longer shows a positive raw difference and a residual no better than the base's.

    python bench/length_check.py runs/demo                  # any finished run directory

This is the check that found why the 0.6.0 demo's helpful model lost to the base model (see docs/benchmarks/demo.md's
demo section): the offline heads lean on length, the base model rambles to the token limit, and the training data's
replies had been cut at 80 tokens and trained on as finished.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory (RUN/eval/scores.parquet)")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from paretohqd.config import load_config
    from paretohqd.policy.load import resolve_model_path
    from paretohqd.tables import format_table

    config = load_config(args.run / "config.resolved.yaml")
    names = config.objective_names
    scored = pd.read_parquet(args.run / "eval" / "scores.parquet")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(config.model.name_or_path),
                                              revision=config.model.revision)
    encoded = tokenizer(scored["response"].tolist(), add_special_tokens=False)["input_ids"]
    scored["tokens"] = [len(ids) for ids in encoded]
    design = np.column_stack([np.ones(len(scored)), np.log(scored["tokens"].clip(lower=1))])
    rows, fits = [], []
    residuals = {}
    for name in names:
        y = scored[name].to_numpy(dtype=np.float64)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        residuals[name] = y - design @ coef
        fits.append(f"{name} = {coef[0]:+.3f} {coef[1]:+.3f} x log(tokens): R^2 "
                    f"{1 - residuals[name].var() / y.var():.3f} over {len(y)} replies")
    for model, part in scored.groupby("model", sort=False):
        index = part.index.to_numpy()
        cells = [model]
        for name in names:
            r = residuals[name][index]
            cells += [f"{part[name].mean():+.3f}", f"{r.mean():+.3f} ± {r.std(ddof=1) / np.sqrt(len(r)):.3f}"]
        cells += [f"{part['tokens'].mean():.1f}",
                  f"{part['truncated'].mean():.0%}" if "truncated" in part else "-"]
        rows.append(cells)
    header = ["model"] + [c for n in names for c in (f"mean {n}", f"{n} residual ± se")] + ["tokens", "hit limit"]
    print(f"{args.run}: max_new_tokens {config.evaluate.sampling.max_new_tokens}")
    print(format_table(header, rows, fits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
