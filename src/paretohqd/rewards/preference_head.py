"""Offline reward models: a Bradley-Terry head on frozen MiniLM sentence embeddings, fitted from preference pairs.

No reward model can be downloaded here, so the ``harmless`` and ``helpful`` objectives are small heads fitted on
HH-RLHF pairs (see ``scripts/fit_reward_heads.py``). The reward of a (prompt, response) is

    r = u . x + v . tanh(W x + c)        (the tanh term only for kind "mlp")
    x = (phi(prompt, response) - x_mean) / x_scale
    score = (r - offset) / scale         (mean 0, std 1 over the fit responses)

with phi made of the response embedding, the response embedding times the embedding of the last human turn
(whether the reply is about what was asked), their cosine and the log lengths of the response. Fitting minimises
-log sigmoid(r(chosen) - r(rejected)) plus L2, chooses the kind and the L2 strength by cross-validation grouped by
prompt inside the fit part, and reports accuracy on a held-out part whose prompts it never saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from ..io import write_bytes, write_json
from .base import as_scores
from .embeddings import EMBEDDING_DIM, embed, encoder_identity, last_human_turn

log = logging.getLogger(__name__)

FORMAT = "paretohqd.preference_head/1"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_HEADS: dict[str, Path] = {
    "harmless": ASSETS / "harmless_head.npz",
    "helpful": ASSETS / "helpful_head.npz",
}

# Blocks of phi, in order. "context" is the last human turn of the prompt (the whole prompt for non-dialogue data).
FEATURE_BLOCKS: dict[str, int] = {
    "response": EMBEDDING_DIM,
    "response*context": EMBEDDING_DIM,
    "cosine": 1,
    "log_words": 1,
    "log_chars": 1,
}
DEFAULT_FEATURES = tuple(FEATURE_BLOCKS)
KINDS = ("auto", "linear", "mlp")
# "linear": L2 on the linear weights; "mlp": L2 on the tanh layer, added to the best linear model's penalty.
DEFAULT_L2_GRID = {"linear": (0.1, 0.3, 1.0, 3.0, 10.0), "mlp": (0.03, 0.1, 0.3)}
# kind="auto" takes the MLP only when it beats the linear head's cross-validated accuracy by this much: at strong
# L2 its tanh layer dies and it equals the linear head up to float noise, which must not decide the kind.
MLP_MIN_GAIN = 0.005
# The few scalar features (length, cosine) carry a strong, well-determined signal; shrinking them as hard as the
# hundreds of noisy embedding coordinates would all but remove them, so their penalty is this much lighter.
SCALAR_L2_FACTOR = 1e-3


# ----------------------------------------------------------------------------------------------------- features

def _check_features(features: Sequence[str]) -> tuple[str, ...]:
    features = tuple(features)
    unknown = [f for f in features if f not in FEATURE_BLOCKS]
    if unknown or not features or len(set(features)) != len(features):
        raise ValueError(f"bad feature list {list(features)}: use distinct names from {', '.join(FEATURE_BLOCKS)}")
    return features


def _word_counts(texts: Sequence[str]) -> np.ndarray:
    return pd.Series(list(texts), dtype=object).str.split().str.len().fillna(0).to_numpy(dtype=np.float64)


def _char_counts(texts: Sequence[str]) -> np.ndarray:
    return pd.Series(list(texts), dtype=object).str.len().fillna(0).to_numpy(dtype=np.float64)


def _features(features: Sequence[str], response_emb: np.ndarray, context_emb: np.ndarray,
              responses: Sequence[str]) -> np.ndarray:
    """phi for n samples, (n, d) float64, from precomputed embeddings (so one fit embeds every text once)."""
    r = response_emb.astype(np.float64)
    h = context_emb.astype(np.float64)
    blocks = []
    for name in features:
        if name == "response":
            blocks.append(r)
        elif name == "response*context":
            blocks.append(r * h)
        elif name == "cosine":
            blocks.append(np.einsum("ij,ij->i", r, h)[:, None])  # unit vectors: the dot product is the cosine
        elif name == "log_words":
            blocks.append(np.log1p(_word_counts(responses))[:, None])
        elif name == "log_chars":
            blocks.append(np.log1p(_char_counts(responses))[:, None])
    return np.concatenate(blocks, axis=1)


def _penalty_weights(features: Sequence[str]) -> np.ndarray:
    return np.concatenate([np.full(FEATURE_BLOCKS[f], 1.0 if FEATURE_BLOCKS[f] > 1 else SCALAR_L2_FACTOR)
                           for f in features])


def context_texts(prompts: Sequence[str]) -> list[str]:
    """What the response is compared with: the last human turn of each prompt."""
    return [last_human_turn(p) for p in prompts]


# --------------------------------------------------------------------------------------------------------- head

class PreferenceHead:
    """A fitted reward head: numpy weights, the feature spec, the output calibration and metadata."""

    def __init__(self, kind: str, features: Sequence[str], params: dict[str, np.ndarray], x_mean: np.ndarray,
                 x_scale: np.ndarray, offset: float = 0.0, scale: float = 1.0,
                 metadata: dict[str, Any] | None = None):
        if kind not in ("linear", "mlp"):
            raise ValueError(f"unknown head kind '{kind}' (use linear or mlp)")
        self.kind = kind
        self.features = _check_features(features)
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.x_mean = np.asarray(x_mean, dtype=np.float64)
        self.x_scale = np.asarray(x_scale, dtype=np.float64)
        self.offset = float(offset)
        self.scale = float(scale)
        self.metadata = dict(metadata or {})
        dim = sum(FEATURE_BLOCKS[f] for f in self.features)
        needed = ["u"] + (["W", "c", "v"] if kind == "mlp" else [])
        missing = [k for k in needed if k not in self.params]
        if missing:
            raise ValueError(f"{kind} head is missing parameter(s) {', '.join(missing)}")
        if self.x_mean.shape != (dim,) or self.x_scale.shape != (dim,) or self.params["u"].shape != (dim,):
            raise ValueError(f"head weights do not match its features ({dim} dimensions)")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"head scale must be positive (got {self.scale})")

    @property
    def dim(self) -> int:
        return int(self.x_mean.shape[0])

    def raw_from_features(self, phi: np.ndarray) -> np.ndarray:
        """Uncalibrated reward r for a (n, d) feature matrix; one matrix product per layer, no per-sample loop."""
        x = (phi - self.x_mean) / self.x_scale
        r = x @ self.params["u"]
        if self.kind == "mlp":
            r = r + np.tanh(x @ self.params["W"] + self.params["c"]) @ self.params["v"]
        return r

    def score_features(self, phi: np.ndarray) -> np.ndarray:
        return (self.raw_from_features(phi) - self.offset) / self.scale

    def score_embeddings(self, response_emb: np.ndarray, context_emb: np.ndarray,
                         responses: Sequence[str]) -> np.ndarray:
        return self.score_features(_features(self.features, response_emb, context_emb, responses))

    def score_texts(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Calibrated rewards (float64) for aligned lists of prompts and responses."""
        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise ValueError(f"score_texts got {len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        response_emb = embed(responses, batch_size=batch_size)
        context_emb = embed(context_texts(prompts), batch_size=batch_size)
        return self.score_embeddings(response_emb, context_emb, responses)

    # ------------------------------------------------------------------------------------------- persistence

    def to_bytes(self) -> bytes:
        metadata = {**self.metadata, "format": FORMAT, "kind": self.kind, "features": list(self.features),
                    "offset": self.offset, "scale": self.scale}
        arrays = {"x_mean": self.x_mean, "x_scale": self.x_scale,
                  # A unicode array (not a pickled object) keeps the file loadable with allow_pickle=False.
                  "metadata": np.array(json.dumps(metadata, sort_keys=True, default=_json_default)),
                  **{f"param_{k}": v for k, v in self.params.items()}}
        buffer = io.BytesIO()
        # np.savez stamps the current time into the zip; a fixed stamp makes equal heads byte-identical, so the
        # head's sha256 (which keys score caches) changes only when the head does.
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w") as handle:
                    np.lib.format.write_array(handle, np.asarray(arrays[key]), allow_pickle=False)
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            raise UserError(f"head output '{path}' is a folder; give a file name such as {path / 'head.npz'}")
        write_bytes(path, self.to_bytes())  # atomic: a crash never leaves half a head file

    @classmethod
    def load(cls, path: str | Path) -> "PreferenceHead":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"preference head file '{path}' does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                metadata = json.loads(str(data["metadata"]))
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"'{path}' is not a preference head file: {exc}") from None
        if metadata.get("format") != FORMAT:
            raise UserError(f"'{path}' has head format {metadata.get('format')!r}; this version reads {FORMAT!r}")
        params = {k[len("param_"):]: v for k, v in arrays.items() if k.startswith("param_")}
        try:
            return cls(kind=metadata["kind"], features=metadata["features"], params=params,
                       x_mean=arrays["x_mean"], x_scale=arrays["x_scale"], offset=metadata["offset"],
                       scale=metadata["scale"], metadata={k: v for k, v in metadata.items()
                                                          if k not in ("format", "kind", "features", "offset",
                                                                       "scale")})
        except (KeyError, ValueError) as exc:
            raise UserError(f"preference head file '{path}' is incomplete or inconsistent: {exc}") from None

    def __repr__(self) -> str:
        return f"PreferenceHead(kind={self.kind!r}, features={list(self.features)}, dim={self.dim})"


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


# ---------------------------------------------------------------------------------------------------- objective

def resolve_head_path(head: str | Path) -> Path:
    """A head file path, or the name of a shipped head ('harmless', 'helpful')."""
    if isinstance(head, str) and head in SHIPPED_HEADS:
        return SHIPPED_HEADS[head]
    return Path(head)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PreferenceHeadObjective:
    """The Objective protocol over a saved :class:`PreferenceHead` (the file is read once, at construction)."""

    def __init__(self, name: str, head_path: str | Path, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"objective '{name}': batch_size must be at least 1 (got {batch_size})")
        self.name = name
        self.head_path = resolve_head_path(head_path)
        self.batch_size = int(batch_size)
        self.head = PreferenceHead.load(self.head_path)
        self._sha256 = file_sha256(self.head_path)

    def score(self, batch: pd.DataFrame) -> np.ndarray:
        missing = [c for c in ("prompt", "response") if c not in batch.columns]
        if missing:
            raise ValueError(f"objective '{self.name}' needs column(s) {', '.join(missing)} in the batch "
                             f"(got {', '.join(map(str, batch.columns)) or 'none'})")
        scores = self.head.score_texts(batch["prompt"].astype(str).tolist(), batch["response"].astype(str).tolist(),
                                       batch_size=self.batch_size)
        return as_scores(scores, len(batch), self.name)

    def fingerprint(self) -> dict[str, Any]:
        # batch_size is left out on purpose: scores do not depend on it.
        return {"type": "preference_head", "head_sha256": self._sha256, "kind": self.head.kind,
                "features": list(self.head.features), **encoder_identity()}

    def __repr__(self) -> str:
        return f"PreferenceHeadObjective(name={self.name!r}, head_path='{self.head_path}')"


# ------------------------------------------------------------------------------------------------------ fitting

def split_by_prompt(prompts: Sequence[str], heldout_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out pairs: a random ``heldout_fraction`` of the distinct prompts, all their pairs.

    Pairs sharing a prompt must stay on one side, or the held-out accuracy would reward remembering prompts.
    Deterministic in (prompt order, fraction, seed).
    """
    codes, uniques = pd.factorize(pd.Series(list(prompts), dtype=object))
    n = len(uniques)
    if heldout_fraction <= 0 or n == 0:
        return np.zeros(len(codes), dtype=bool)
    count = min(max(int(round(heldout_fraction * n)), 1), n - 1)
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
    if pairs["prompt"].nunique() < 2:
        raise UserError("fitting a reward head needs pairs with at least 2 distinct prompts (they are split by "
                        "prompt into fit and held-out parts)")
    return pairs


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    pen = torch.from_numpy(_penalty_weights(features))
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
    features = _check_features(features)
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
    phi = _features(features, response_emb, context_emb, responses)
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

    with _torch_threads(1):  # tiny problems; one thread also keeps the optimiser's arithmetic reproducible
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

    chars_c, chars_r = _char_counts(pairs["chosen"]), _char_counts(pairs["rejected"])
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
        "n_fit_pairs": int(len(fit_idx)),
        "n_heldout_pairs": int(len(held_idx)),
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
        "versions": _versions(),
    }
    head.metadata = {"encoder": report["encoder"], "data_sha256": data_sha, "l2": best["l2"],
                     "l2_hidden": best["l2_hidden"], "seed": seed,
                     "heldout_fraction": heldout_fraction, "heldout_accuracy": report["heldout_accuracy"],
                     "n_fit_pairs": report["n_fit_pairs"], "hidden": report["hidden"]}
    return head, report


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("paretohqd", "numpy", "torch", "sentence-transformers", "transformers"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def report_path_for(output: str | Path) -> Path:
    """Where :func:`fit_and_save` writes the report: ``head.npz`` -> ``head.report.json``."""
    output = Path(output)
    return output.with_suffix(".report.json") if output.suffix else output.with_name(output.name + ".report.json")


def fit_and_save(sources: list[str], output: str | Path, heldout_fraction: float = 0.2, seed: int = 0,
                 kind: str = "auto", **kwargs: Any) -> dict[str, Any]:
    """Load HH-RLHF-style pairs from ``sources``, fit a head, save it to ``output`` (.npz) and its report beside it.

    This is ``paretohqd rewards fit --data FILE [--data FILE] --output PATH [--heldout-fraction 0.2] [--seed 0]
    [--kind auto]``. Extra keyword arguments go to :func:`fit_preference_head`. Returns the report.
    """
    from ..data import load_pairs

    if isinstance(sources, (str, Path)):
        sources = [str(sources)]
    if not sources:
        raise UserError("give at least one preference-pair data file to fit a reward head on")
    output = Path(output)
    if output.is_dir():
        raise UserError(f"head output '{output}' is a folder; give a file name such as {output / 'head.npz'}")
    pairs = load_pairs([str(s) for s in sources])
    head, report = fit_preference_head(pairs, heldout_fraction=heldout_fraction, seed=seed, kind=kind, **kwargs)
    head.save(output)
    report = {"sources": [str(s) for s in sources], "output": output.name, "head_sha256": file_sha256(output),
              "head_bytes": output.stat().st_size, **report}
    write_json(report_path_for(output), report)
    return report
