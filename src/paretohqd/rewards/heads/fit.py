"""Fitting a reward head from preference pairs: the split by prompt, full-batch L-BFGS, grouped cross-validation
and the report. Only ``paretohqd rewards fit`` (and scripts/fit_reward_heads.py) import this module.

Fitting minimises -log sigmoid(r(chosen) - r(rejected)) plus L2, chooses the kind and the L2 strength by
cross-validation grouped by prompt inside the fit part, and reports accuracy on a held-out part whose prompts it
never saw.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...data import clean_pairs, load_data
from ...env import package_versions, torch_threads
from ...errors import UserError
from ...io import file_sha256, write_json
from ..embeddings import embed, encoder_identity
from .model import (
    DEFAULT_FEATURES,
    FEATURE_BLOCKS,
    PreferenceHead,
    char_counts,
    check_features,
    context_texts,
    feature_matrix,
)

log = logging.getLogger(__name__)

KINDS = ("auto", "linear", "mlp")
# "linear": L2 on the linear weights; "mlp": L2 on the tanh layer, added to the best linear model's penalty.
DEFAULT_L2_GRID = {"linear": (0.1, 0.3, 1.0, 3.0, 10.0), "mlp": (0.03, 0.1, 0.3)}
# kind="auto" takes the MLP only when it beats the linear head's cross-validated accuracy by this much: at strong
# L2 its tanh layer dies and it equals the linear head up to float noise, which must not decide the kind.
MLP_MIN_GAIN = 0.005
# The few scalar features (length, cosine) carry a strong, well-determined signal; shrinking them as hard as the
# hundreds of noisy embedding coordinates would all but remove them, so their penalty is this much lighter.
SCALAR_L2_FACTOR = 1e-3



def penalty_weights(features: Sequence[str]) -> np.ndarray:
    return np.concatenate([np.full(FEATURE_BLOCKS[f], 1.0 if FEATURE_BLOCKS[f] > 1 else SCALAR_L2_FACTOR)
                           for f in features])


def split_by_prompt(prompts: Sequence[str], heldout_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out pairs: a random ``heldout_fraction`` of the distinct prompts, all their pairs.

    Pairs sharing a prompt must stay on one side, or the held-out accuracy would reward remembering prompts.
    Deterministic in (prompt order, fraction, seed).
    """
    codes, uniques = pd.factorize(pd.Series(list(prompts), dtype=object))
    n = len(uniques)
    if heldout_fraction <= 0 or n == 0:
        return np.zeros(len(codes), dtype=bool)
    count = min(max(round(heldout_fraction * n), 1), n - 1)
    held = np.random.default_rng(seed).permutation(n)[:count]
    return np.isin(codes, held)


def pairs_sha256(pairs: pd.DataFrame) -> str:
    """Fingerprint of the pairs' text (prompt, chosen, rejected, in order)."""
    rows = pairs[["prompt", "chosen", "rejected"]].to_numpy().tolist()
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


def split_sha256(mask: np.ndarray) -> str:
    return hashlib.sha256(np.flatnonzero(mask).astype("<i8").tobytes()).hexdigest()


def pairwise_accuracy(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """Share of pairs where chosen scores higher; ties count half."""
    if len(chosen) == 0:
        return float("nan")
    diff = np.asarray(chosen, dtype=np.float64) - np.asarray(rejected, dtype=np.float64)
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def validate_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(pairs, pd.DataFrame):
        raise ValueError(f"pairs must be a pandas DataFrame (got {type(pairs).__name__})")
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in pairs.columns]
    if missing:
        raise UserError(f"the preference pairs have no column {', '.join(repr(c) for c in missing)} "
                        f"(columns: {', '.join(map(str, pairs.columns)) or 'none'})")
    if pairs.empty:
        raise UserError("there are no preference pairs to fit a reward head on")
    for column in ("prompt", "chosen", "rejected"):
        null = pairs[column].isna().to_numpy()
        if null.any():
            raise UserError(f"preference pair {int(np.flatnonzero(null)[0]) + 1} has no '{column}' text")
    pairs = pairs[["prompt", "chosen", "rejected"]].astype(str).reset_index(drop=True)
    # One reply twice has no gradient (same text, same features) and counts as a tie: harmless in a few rows
    # (counted in the report), but pairs that are all such hold no preference to fit.
    if (pairs["chosen"] == pairs["rejected"]).all():
        raise UserError("preference pair 1: 'chosen' and 'rejected' are the same reply, as in every pair, so the "
                        "pairs state no preference: each pair needs a preferred and a different rejected reply")
    if pairs["prompt"].nunique() < 2:
        raise UserError("fitting a reward head needs pairs with at least 2 distinct prompts (they are split by "
                        "prompt into fit and held-out parts)")
    return pairs


def _train(phi_c: np.ndarray, phi_r: np.ndarray, features: tuple[str, ...], kind: str, l2: float,
           l2_hidden: float, hidden: int, seed: int, max_iter: int) -> PreferenceHead:
    """Fit one head on (chosen, rejected) feature rows with full-batch L-BFGS in float64; uncalibrated."""
    import torch

    both = np.concatenate([phi_c, phi_r])
    x_mean = both.mean(axis=0)
    x_scale = both.std(axis=0)
    x_scale = np.where(x_scale > 1e-12, x_scale, 1.0)  # a constant feature (e.g. on tiny data) must not divide by 0
    xc = torch.from_numpy((phi_c - x_mean) / x_scale)
    xr = torch.from_numpy((phi_r - x_mean) / x_scale)
    dim = xc.shape[1]
    pen = torch.from_numpy(penalty_weights(features))
    generator = torch.Generator().manual_seed(seed)
    u = torch.zeros(dim, dtype=torch.float64, requires_grad=True)
    params = {"u": u}
    if kind == "mlp":
        # Linear skip plus a small tanh layer: at strong L2 it falls back to the linear model instead of collapsing.
        params["W"] = (torch.randn(dim, hidden, generator=generator, dtype=torch.float64) / math.sqrt(dim))
        params["c"] = torch.zeros(hidden, dtype=torch.float64)
        params["v"] = (torch.randn(hidden, generator=generator, dtype=torch.float64) / math.sqrt(hidden))
        for p in params.values():
            p.requires_grad_(True)

    def reward(x):
        out = x @ params["u"]
        if kind == "mlp":
            out = out + torch.tanh(x @ params["W"] + params["c"]) @ params["v"]
        return out

    def regulariser():
        total = l2 * (pen * params["u"] ** 2).sum()
        if kind == "mlp":
            total = total + l2_hidden * ((params["W"] ** 2).sum() + (params["v"] ** 2).sum())
        return total

    optimiser = torch.optim.LBFGS(list(params.values()), lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.softplus(reward(xr) - reward(xc)).mean() + regulariser()
        loss.backward()
        return loss

    optimiser.step(closure)
    weights = {k: v.detach().numpy().copy() for k, v in params.items()}
    return PreferenceHead(kind, features, weights, x_mean, x_scale)


def _bt_metrics(head: PreferenceHead, phi_c: np.ndarray, phi_r: np.ndarray) -> tuple[float, float]:
    rc, rr = head.raw_from_features(phi_c), head.raw_from_features(phi_r)
    loss = float(np.mean(np.logaddexp(0.0, rr - rc)))
    return pairwise_accuracy(rc, rr), loss


def fit_preference_head(pairs: pd.DataFrame, heldout_fraction: float = 0.2, seed: int = 0, kind: str = "auto",
                        features: Sequence[str] = DEFAULT_FEATURES, l2_grid: dict[str, Sequence[float]] | None = None,
                        hidden: int = 16, folds: int = 5, max_iter: int = 200, batch_size: int = 64
                        ) -> tuple[PreferenceHead, dict[str, Any]]:
    """Fit a Bradley-Terry reward head on preference pairs (columns prompt, chosen, rejected).

    The pairs are split by prompt into a fit part and a held-out part (``heldout_fraction``; 0 keeps none back).
    Inside the fit part, ``folds``-fold cross-validation grouped by prompt picks the kind ("linear" or "mlp" when
    ``kind="auto"``) and the L2 strength from ``l2_grid``; the chosen setting is then refitted on the whole fit
    part, and its scores are standardised over the fit responses. The held-out part is never used for a choice.
    Returns the head and a JSON-safe report.
    """
    started = time.perf_counter()
    if kind not in KINDS:
        raise UserError(f"unknown reward head kind '{kind}' (use one of: {', '.join(KINDS)})")
    if not 0 <= heldout_fraction < 1:
        raise UserError(f"heldout_fraction must be in [0, 1) (got {heldout_fraction})")
    if hidden < 1 or folds < 2 or max_iter < 1:
        raise ValueError(f"need hidden >= 1, folds >= 2 and max_iter >= 1 (got {hidden}, {folds}, {max_iter})")
    features = check_features(features)
    pairs = validate_pairs(pairs)
    grid = {k: tuple(float(x) for x in v) for k, v in {**DEFAULT_L2_GRID, **(l2_grid or {})}.items()}
    kinds = ("linear", "mlp") if kind == "auto" else (kind,)
    for k in set(kinds) | {"linear"}:
        if not grid.get(k) or any(not (x >= 0 and math.isfinite(x)) for x in grid[k]):
            raise ValueError(f"l2_grid['{k}'] must be a non-empty list of non-negative numbers (got {grid.get(k)})")

    held = split_by_prompt(pairs["prompt"].tolist(), heldout_fraction, seed)
    if heldout_fraction > 0 and not held.any():
        raise UserError("the held-out part is empty; use more pairs or heldout_fraction=0")

    # Embedding is nearly all of the cost: every text is embedded once here, then every fit reuses the features.
    t0 = time.perf_counter()
    n = len(pairs)
    responses = pairs["chosen"].tolist() + pairs["rejected"].tolist()
    response_emb = embed(responses, batch_size=batch_size)
    context_emb = embed(context_texts(pairs["prompt"].tolist()), batch_size=batch_size)
    context_emb = np.concatenate([context_emb, context_emb])
    phi = feature_matrix(features, response_emb, context_emb, responses)
    phi_c, phi_r = phi[:n], phi[n:]
    embed_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    fit_idx, held_idx = np.flatnonzero(~held), np.flatnonzero(held)
    fit_codes = pd.factorize(pairs["prompt"].iloc[fit_idx])[0]
    n_groups = int(fit_codes.max()) + 1
    n_folds = min(folds, n_groups)
    if n_folds < 2:
        raise UserError("the fit part has a single distinct prompt; cross-validation needs at least 2")
    fold_of = np.random.default_rng([seed, 1]).permutation(n_groups)[fit_codes] % n_folds

    def train(rows: np.ndarray, k: str, l2: float, l2_hidden: float = 0.0) -> PreferenceHead:
        return _train(phi_c[rows], phi_r[rows], features, k, l2, l2_hidden, hidden, seed, max_iter)

    def cross_validate(k: str, l2: float, l2_hidden: float | None = None) -> dict[str, Any]:
        correct = loss = 0.0
        for f in range(n_folds):
            head = train(fit_idx[fold_of != f], k, l2, l2_hidden or 0.0)
            va = fit_idx[fold_of == f]
            fold_acc, fold_loss = _bt_metrics(head, phi_c[va], phi_r[va])
            correct += fold_acc * len(va)
            loss += fold_loss * len(va)
        row = {"kind": k, "l2": l2, "l2_hidden": l2_hidden, "cv_accuracy": correct / len(fit_idx),
               "cv_logloss": loss / len(fit_idx)}
        log.info("reward head cross-validation: %s", row)
        return row

    def best_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return max(rows, key=lambda r: (r["cv_accuracy"], -r["cv_logloss"]))

    with torch_threads(1):  # tiny problems; one thread also keeps the optimiser's arithmetic reproducible
        # The linear search always runs: its L2 is also the MLP's penalty on the linear (skip) part, so the MLP
        # search only asks whether a nonlinear correction on top of the best linear model helps.
        validation = [cross_validate("linear", l2) for l2 in grid["linear"]]
        best_linear = best_of(validation)
        if "mlp" in kinds:
            validation += [cross_validate("mlp", best_linear["l2"], l2h) for l2h in grid["mlp"]]
        if kind == "auto":
            best_mlp = best_of([r for r in validation if r["kind"] == "mlp"])
            best = best_mlp if best_mlp["cv_accuracy"] > best_linear["cv_accuracy"] + MLP_MIN_GAIN else best_linear
        else:
            best = best_of([r for r in validation if r["kind"] == kind])
        finals = {}
        for k in kinds:
            setting = best if k == best["kind"] else best_of([r for r in validation if r["kind"] == k])
            finals[k] = (setting, train(fit_idx, k, setting["l2"], setting["l2_hidden"] or 0.0))
    fit_seconds = time.perf_counter() - t0

    def accuracy(head: PreferenceHead, rows: np.ndarray) -> float | None:
        if len(rows) == 0:
            return None
        return pairwise_accuracy(head.raw_from_features(phi_c[rows]), head.raw_from_features(phi_r[rows]))

    chosen_kind = best["kind"]
    head = finals[chosen_kind][1]
    fit_raw = head.raw_from_features(np.concatenate([phi_c[fit_idx], phi_r[fit_idx]]))
    head.offset = float(fit_raw.mean())
    head.scale = float(fit_raw.std()) if fit_raw.std() > 1e-12 else 1.0
    data_sha = pairs_sha256(pairs)

    chars_c, chars_r = char_counts(pairs["chosen"]), char_counts(pairs["rejected"])
    baselines = {}
    for name, sign in (("longer_response_wins", 1.0), ("shorter_response_wins", -1.0)):
        baselines[name] = {
            "heldout_accuracy": pairwise_accuracy(sign * chars_c[held_idx], sign * chars_r[held_idx])
            if len(held_idx) else None,
            "fit_accuracy": pairwise_accuracy(sign * chars_c[fit_idx], sign * chars_r[fit_idx]),
        }
    report = {
        "kind": chosen_kind,
        "kind_requested": kind,
        "features": list(features),
        "feature_dim": head.dim,
        "hidden": hidden if chosen_kind == "mlp" else None,
        "n_pairs": n,
        "n_same_reply_pairs": int((pairs["chosen"] == pairs["rejected"]).sum()),
        "n_fit_pairs": len(fit_idx),
        "n_heldout_pairs": len(held_idx),
        "n_fit_prompts": n_groups,
        "heldout_fraction": heldout_fraction,
        "seed": seed,
        "heldout_accuracy": accuracy(head, held_idx),
        "fit_accuracy": accuracy(head, fit_idx),
        "cv_accuracy": best["cv_accuracy"],
        "baselines": baselines,
        "per_kind": {k: {"l2": finals[k][0]["l2"], "l2_hidden": finals[k][0]["l2_hidden"],
                         "cv_accuracy": finals[k][0]["cv_accuracy"],
                         "heldout_accuracy": accuracy(finals[k][1], held_idx),
                         "fit_accuracy": accuracy(finals[k][1], fit_idx)} for k in kinds},
        "regularisation": {"l2": best["l2"], "l2_hidden": best["l2_hidden"], "scalar_l2_factor": SCALAR_L2_FACTOR,
                           "grid": {k: list(grid[k]) for k in sorted(set(kinds) | {"linear"})},
                           "selection": f"{n_folds}-fold cross-validation grouped by prompt inside the fit part: "
                                        "highest accuracy, then lowest log-loss; the MLP's tanh layer is searched on "
                                        "top of the best linear L2, and auto takes the MLP only if it gains more "
                                        f"than {MLP_MIN_GAIN} accuracy",
                           "validation": validation},
        "calibration": {"offset": head.offset, "scale": head.scale,
                        "note": "score = (raw - offset) / scale: mean 0, std 1 over the fit pairs' responses"},
        "loss": "Bradley-Terry: mean -log sigmoid(r(chosen) - r(rejected)) + l2 * |u|^2 (scalar features "
                "x scalar_l2_factor) + l2_hidden * (|W|^2 + |v|^2)",
        "data_sha256": data_sha,
        "heldout_split_sha256": split_sha256(held),
        "encoder": encoder_identity(),
        "seconds": {"embed": round(embed_seconds, 2), "fit": round(fit_seconds, 2),
                    "total": round(time.perf_counter() - started, 2)},
        "versions": package_versions(("paretohqd", "numpy", "torch", "sentence-transformers", "transformers")),
    }
    head.metadata = {"encoder": report["encoder"], "data_sha256": data_sha, "l2": best["l2"],
                     "l2_hidden": best["l2_hidden"], "seed": seed,
                     "heldout_fraction": heldout_fraction, "heldout_accuracy": report["heldout_accuracy"],
                     "n_fit_pairs": report["n_fit_pairs"], "hidden": report["hidden"]}
    return head, report


def report_path_for(output: str | Path) -> Path:
    """Where :func:`fit_and_save` writes the report: ``head.npz`` -> ``head.report.json``."""
    output = Path(output)
    return output.with_suffix(".report.json") if output.suffix else output.with_name(output.name + ".report.json")


def check_output(output: Path, sources: list[str]) -> None:
    """Before any work: the head is a .npz file, and neither it nor its report (written beside it) is one of the
    ``--data`` files, which the head or the report would overwrite after the whole fit (compared resolved, so that
    another spelling of the same file is caught)."""
    if output.is_dir():
        raise UserError(f"rewards fit --output '{output}' is a folder; give a file name such as "
                        f"{output / 'head.npz'}")
    data_files = {Path(s).expanduser().resolve(): s for s in sources}
    source = data_files.get(output.expanduser().resolve())
    if source is not None:
        raise UserError(f"rewards fit --output '{output}' is the --data file '{source}', which the head would "
                        "overwrite: give the head another .npz name")
    report = report_path_for(output)
    source = data_files.get(report.expanduser().resolve())
    if source is not None:
        raise UserError(f"rewards fit would write its report to '{report}' (beside --output '{output}'), which is "
                        f"the --data file '{source}': give the head another .npz name")
    if output.suffix != ".npz":
        # np.savez would add .npz to any other name: the head would land beside the name asked for
        raise UserError(f"rewards fit --output '{output}' must end with .npz (a reward head is saved as a NumPy "
                        f".npz file): give a name such as {output.with_suffix('.npz').name}")


def fit_and_save(sources: list[str], output: str | Path, heldout_fraction: float = 0.2, seed: int = 0,
                 kind: str = "auto", **kwargs: Any) -> dict[str, Any]:
    """Load HH-RLHF-style pairs from ``sources``, fit a head, save it to ``output`` (.npz) and its report beside it.

    This is ``paretohqd rewards fit --data FILE [--data FILE] --output PATH [--heldout-fraction 0.2] [--seed 0]
    [--kind auto]``. Extra keyword arguments go to :func:`fit_preference_head`. Returns the report.
    """
    if isinstance(sources, (str, Path)):
        sources = [str(sources)]
    if not sources:
        raise UserError("give at least one preference-pair data file to fit a reward head on")
    output = Path(output)
    check_output(output, [str(s) for s in sources])
    loaded = load_data([str(s) for s in sources], adapter="hh_rlhf").pairs
    assert loaded is not None
    pairs = clean_pairs(loaded)
    head, report = fit_preference_head(pairs, heldout_fraction=heldout_fraction, seed=seed, kind=kind, **kwargs)
    head.save(output)
    report = {"sources": [str(s) for s in sources], "output": output.name, "head_sha256": file_sha256(output),
              "head_bytes": output.stat().st_size, **report,
              "n_left_out_pairs": int((~loaded["same_prompt"]).sum())}
    write_json(report_path_for(output), report)
    return report
