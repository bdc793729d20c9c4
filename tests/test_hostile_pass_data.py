"""The hostile pass's data classes (HOSTILE_PASS.md), fixed: I (``rewards fit --output``), J (pairs whose chosen
and rejected are the same reply), K (``compare --labels`` that break compare.md's table), S (a reference point no
run's point lies above, or one that is not finite), N2 (a TRL label written as text) and N3 (a pair's dialogue
that is not text). Each row is judged by the catalogue's contract (tests/test_hostile.py ``judge``).
"""

from __future__ import annotations

import json

import pytest

from .test_hostile import cli, config_with, finished, judge, rows, write_rows  # noqa: F401
from .test_hostile_pass import PAIRS, finished_copy

# ---------------------------------------------------------------------------------------------------------------
# I. rewards fit --output; J. pairs whose chosen and rejected are the same text; N3. a dialogue that is not text.


def test_rewards_fit_output_onto_its_own_data(tmp_path):
    data = write_rows(tmp_path / "p.jsonl", PAIRS)
    before = data.read_bytes()
    judge(cli("rewards", "fit", "--data", data, "--output", data), r"p\.jsonl", r"--data|data file|\.npz",
          root=tmp_path)
    assert data.read_bytes() == before, "the pairs file was overwritten by the head"


def test_rewards_fit_output_onto_a_data_file_named_npz(tmp_path):
    """The same file by another spelling (resolved), even with the .npz ending: refused as the --data file."""
    data = write_rows(tmp_path / "p.npz", PAIRS)
    before = data.read_bytes()
    (tmp_path / "sub").mkdir()
    judge(cli("rewards", "fit", "--data", data, "--output", tmp_path / "sub" / ".." / "p.npz"), r"p\.npz",
          r"--data", root=tmp_path)
    assert data.read_bytes() == before


def test_rewards_fit_report_onto_its_own_data(tmp_path):
    """The report is written beside the head (head.npz -> head.report.json): it must not overwrite a data file."""
    data = write_rows(tmp_path / "head.report.json", PAIRS)
    before = data.read_bytes()
    judge(cli("rewards", "fit", "--data", data, "--output", tmp_path / "head.npz"), r"head\.report\.json",
          r"--data", root=tmp_path)
    assert data.read_bytes() == before
    assert not (tmp_path / "head.npz").exists()


def test_rewards_fit_output_not_npz(tmp_path):
    data = write_rows(tmp_path / "p.jsonl", PAIRS)
    judge(cli("rewards", "fit", "--data", data, "--output", tmp_path / "head.txt"), r"head\.txt", r"\.npz",
          root=tmp_path)
    assert not (tmp_path / "head.txt").exists()


def test_rewards_fit_identical_pairs(tmp_path):
    data = write_rows(tmp_path / "p.jsonl", [{"chosen": p["chosen"], "rejected": p["chosen"]} for p in PAIRS])
    before = data.read_bytes()
    judge(cli("rewards", "fit", "--data", data, "--output", tmp_path / "head.npz"), r"p\.jsonl", r"row 1\b",
          r"identical|same", root=tmp_path)
    assert not (tmp_path / "head.npz").exists()
    assert data.read_bytes() == before


def test_rewards_fit_some_identical_pairs_are_kept_and_said(tmp_path):
    """A few pairs of one reply twice (public HH-RLHF has some) are no refusal: they are counted, said and recorded."""
    same = "\n\nHuman: q9\n\nAssistant: same"
    data = write_rows(tmp_path / "p.jsonl", [*PAIRS, {"chosen": same, "rejected": same}])
    result = cli("rewards", "fit", "--data", data, "--output", tmp_path / "head.npz")
    assert result.code == 0, result.describe()
    assert "1 of the 7 pairs has the same reply" in result.out, result.out
    assert json.loads((tmp_path / "head.report.json").read_text())["n_same_reply_pairs"] == 1


def test_rewards_fit_chosen_not_text(tmp_path):
    data = write_rows(tmp_path / "p.jsonl", [{"chosen": 5, "rejected": p["rejected"]} for p in PAIRS])
    judge(cli("rewards", "fit", "--data", data, "--output", tmp_path / "h.npz"), r"p\.jsonl", r"row 1\b",
          r"chosen", r"not text|number|must be text", root=tmp_path)
    assert not (tmp_path / "h.npz").exists()


def test_trl_implicit_pairs_identical(tmp_path):
    records = [{"id": r["id"], "a": r["a"], "b": r["b"],
                "chosen": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]}
               for r in rows()]
    for record in records:
        record["rejected"] = record["chosen"]
    write_rows(tmp_path / "data.jsonl", records)
    judge(cli("score", config_with(tmp_path, data={"adapter": "trl"})), r"row 1\b", r"identical|same", root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


def test_trl_explicit_pair_identical_in_one_row(tmp_path):
    records = [{"id": r["id"], "a": r["a"], "b": r["b"], "prompt": r["prompt"], "chosen": r["response"],
                "rejected": "something else"} for r in rows()]
    records[3]["rejected"] = records[3]["chosen"]
    write_rows(tmp_path / "data.jsonl", records)
    judge(cli("score", config_with(tmp_path, data={"adapter": "trl"})), r"data\.jsonl", r"row 4\b",
          r"'chosen' and 'rejected' are the same reply", root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


# ---------------------------------------------------------------------------------------------------------------
# N2. A TRL label written as text.


def test_trl_label_text_says_it_is_text(tmp_path):
    records = [{"id": r["id"], "a": r["a"], "b": r["b"], "prompt": r["prompt"], "completion": r["response"],
                "label": "true" if i % 2 else "false"} for i, r in enumerate(rows())]
    write_rows(tmp_path / "data.jsonl", records)
    judge(cli("score", config_with(tmp_path, data={"adapter": "trl"})), r"row 1\b", r"label",
          r"the text 'false'|a string|is text", root=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# K. compare --labels; S. a reference point no run's point lies above, or one that is not finite.

COMPARE = [
    ("labels-empty", ["--labels", ""], [r"--labels", r"empty"]),
    ("labels-blank", ["--labels", "  "], [r"--labels", r"empty"]),
    ("labels-newline", ["--labels", "a|b\nc"], [r"--labels", r"line break|newline|character"]),
    ("labels-bar", ["--labels", "a|b"], [r"--labels", r"'a\|b'", r"\|"]),
    ("reference-minus-inf", ["--reference_point", "-inf", "-inf"], [r"reference point", r"finite"]),
    ("reference-nan", ["--reference_point", "nan", "0"], [r"reference point", r"finite"]),
    ("reference-above-every-point", ["--reference_point", "1e9", "1e9"], [r"reference point", r"above|dominat|no run"]),
]


@pytest.mark.parametrize("options, patterns", [c[1:] for c in COMPARE], ids=[c[0] for c in COMPARE])
def test_compare(finished, tmp_path, options, patterns):  # noqa: F811
    run = finished_copy(finished, tmp_path)
    judge(cli("compare", run, "--output", tmp_path / "cmp", "--bootstrap", "10", *options), *patterns, root=tmp_path)
    assert not (tmp_path / "cmp").exists()
