"""Scoring throughput of the offline reward models: batched (length-sorted) vs one sample at a time.

    python bench/scoring_speed.py [--n 512] [--single 64] [--batch-size 64] [--objectives harmless helpful ...]

Reads HH-RLHF samples from ../shared/data when present (else the embedded demo set). For each objective it prints
samples/s batched and one-at-a-time (on the first --single samples) and the largest absolute difference between the
two on those samples, which must be ~0: scores may not depend on batching.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from paretohqd.config import ObjectiveConfig
from paretohqd.data import load_data
from paretohqd.rewards import build_objective
from paretohqd.rewards.scoring import score_batches

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--single", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--objectives", nargs="+",
                        default=["harmless", "helpful", "relevance", "non_profanity", "sentiment", "readability"])
    args = parser.parse_args()
    if SHARED.is_dir():
        source = [str(SHARED / "harmless.jsonl"), str(SHARED / "helpful.jsonl")]
        samples = load_data(source, adapter="hh_rlhf").samples
        where = "HH-RLHF (../shared/data)"
    else:
        samples = load_data("embedded:demo", id_column="id").samples
        where = "embedded demo set"
    samples = samples.sample(n=min(args.n, len(samples)), random_state=0).reset_index(drop=True)
    print(f"{len(samples)} samples from {where}; batch size {args.batch_size}; one-at-a-time on {args.single}")
    print("rates in samples/s; the MiniLM objectives share a text-embedding cache, so each runs cold (cache cleared)")
    print(f"{'objective':<14} {'batched/s':>10} {'single/s':>10} {'speed-up':>9} {'max |diff|':>11}")
    subset = samples.iloc[: args.single]
    for name in args.objectives:
        objective = build_objective(ObjectiveConfig(name=name, batch_size=args.batch_size))
        score_batches(objective, samples.iloc[:8], args.batch_size)  # load models before timing
        _cold()
        start = time.perf_counter()
        batched = score_batches(objective, samples, args.batch_size)
        batched_rate = len(samples) / (time.perf_counter() - start)
        _cold()
        start = time.perf_counter()
        single = np.array([objective.score(subset.iloc[[i]])[0] for i in range(len(subset))])
        single_rate = len(subset) / (time.perf_counter() - start)
        difference = float(np.max(np.abs(single - batched[: len(subset)])))
        print(f"{name:<14} {batched_rate:>10.1f} {single_rate:>10.1f} {batched_rate / single_rate:>8.1f}x "
              f"{difference:>11.2e}")
    _cold()
    start = time.perf_counter()
    for name in ("harmless", "helpful", "relevance"):
        score_batches(build_objective(ObjectiveConfig(name=name, batch_size=args.batch_size)), samples,
                      args.batch_size)
    print(f"harmless + helpful + relevance together (shared embeddings): "
          f"{len(samples) / (time.perf_counter() - start):.1f} samples/s")
    _encoding_cost(samples, args.batch_size)
    return 0


def _cold() -> None:
    from paretohqd.rewards import embeddings

    embeddings._memo.clear()


def _encoding_cost(samples, batch_size: int) -> None:
    """What exact scores cost: MiniLM encoding each text alone (what embed() does, so that a text's vector does not
    depend on the texts beside it or on the thread count) against sentence-transformers' padded batches."""
    from paretohqd.rewards.embeddings import embed, embedding_cache_disabled, load_minilm
    from paretohqd.rewards.heads.model import context_texts

    texts = sorted(set(samples["response"].tolist()) | set(context_texts(samples["prompt"].tolist())))
    model = load_minilm()
    start = time.perf_counter()
    padded = model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True,
                          normalize_embeddings=True)
    padded_rate = len(texts) / (time.perf_counter() - start)
    with embedding_cache_disabled():
        start = time.perf_counter()
        alone = embed(texts)
        alone_rate = len(texts) / (time.perf_counter() - start)
    print(f"MiniLM encoding of {len(texts)} distinct texts: one at a time (exact) {alone_rate:.1f} texts/s, padded "
          f"batches of {batch_size} {padded_rate:.1f} texts/s: exact_vs_padded={alone_rate / padded_rate:.2f} "
          f"(max |difference| {float(np.max(np.abs(alone - padded))):.1e})")


if __name__ == "__main__":
    sys.exit(main())
