"""Preference pairs from scored samples, each ordered by one objective's scores: the data of DPO (MODPO, Rewarded
Soups' DPO ingredients).

Which two responses make a pair: a preference-pair dataset's own pairs (HH-RLHF: the chosen and the rejected reply
of one dialogue, i.e. the samples that share ``source``, ``pair_id`` and prompt; pair ids restart in every source
file, so the source is part of the pair), else two responses to one prompt (consecutive ones in data order: the
first with the second, the third with the fourth; a prompt's odd one out is left out). The order is the
objective's, not the dataset's label: the winner is the response scored higher on it; a tie says nothing and is
left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError

PAIR_KEYS = ("source", "pair_id")


def candidate_pairs(samples: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (first, second) of the pairs, in data order of their first member; independent of scores."""
    keys = [c for c in PAIR_KEYS if c in samples.columns] if "pair_id" in samples.columns else []
    groups = samples.groupby([*keys, "prompt"], sort=False, dropna=False).ngroup().to_numpy()
    order = np.argsort(groups, kind="stable")  # each group's rows together, in data order
    grouped = groups[order]
    n = len(grouped)
    starts = np.r_[True, grouped[1:] != grouped[:-1]] if n else np.zeros(0, dtype=bool)
    rank = np.arange(n) - np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    has_next = np.r_[grouped[1:] == grouped[:-1], False] if n else np.zeros(0, dtype=bool)
    firsts = np.flatnonzero((rank % 2 == 0) & has_next)
    firsts = firsts[np.argsort(order[firsts], kind="stable")]
    return order[firsts], order[firsts + 1]


def preference_pairs(scores: pd.DataFrame, objective: str) -> pd.DataFrame:
    """The pairs ordered by ``objective``: prompt, chosen, rejected, their ids, and their row positions in
    ``scores`` (``chosen_row``, ``rejected_row``: what margins are read from)."""
    first, second = candidate_pairs(scores)
    values = scores[objective].to_numpy(dtype=np.float64)
    first_wins = values[first] > values[second]
    keep = values[first] != values[second]
    chosen = np.where(first_wins, first, second)[keep]
    rejected = np.where(first_wins, second, first)[keep]
    if not len(chosen):
        raise UserError(f"no preference pairs to order by '{objective}': DPO needs two responses to one prompt (or "
                        f"a preference-pair dataset such as HH-RLHF) whose {objective} scores differ")
    column = {name: scores[name].to_numpy() for name in ("id", "prompt", "response")}
    return pd.DataFrame({"prompt": column["prompt"][chosen], "chosen": column["response"][chosen],
                         "rejected": column["response"][rejected], "chosen_id": column["id"][chosen],
                         "rejected_id": column["id"][rejected], "chosen_row": chosen, "rejected_row": rejected})


def require_pairs(samples: pd.DataFrame, method: str) -> None:
    """Fail before any work when the data has no pairs at all (whatever the scores)."""
    if not len(candidate_pairs(samples)[0]):
        raise UserError(f"{method} trains on preference pairs, but the data has none: it needs two responses to one "
                        "prompt, or a preference-pair dataset such as HH-RLHF (data.adapter hh_rlhf)")
