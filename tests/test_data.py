import json

import numpy as np
import pandas as pd
import pytest

from paretohqd.data import load_data, load_pairs
from paretohqd.errors import UserError

DIALOGUE = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: {q}\n\nAssistant:"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_formats_load_into_one_schema(tmp_path):
    frame = pd.DataFrame({"q": ["p1", "p2"], "a": ["r1", "r2"], "key": ["x", "y"], "score": [0.1, 0.2]})
    write_jsonl(tmp_path / "d.jsonl", frame.to_dict("records"))
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    import datasets

    datasets.Dataset.from_pandas(frame).save_to_disk(str(tmp_path / "saved"))
    for source in ["d.jsonl", "d.parquet", "d.csv", "saved"]:
        samples = load_data(str(tmp_path / source), prompt_column="q", response_column="a", id_column="key").samples
        assert samples[["id", "prompt", "response"]].values.tolist() == [["x", "p1", "r1"], ["y", "p2", "r2"]]
        assert samples["score"].tolist() == [0.1, 0.2]  # extra columns are kept (for column objectives)


def test_hh_rlhf_adapter_splits_prompt_and_reply(tmp_path):
    rows = [{"chosen": DIALOGUE.format(q="help me") + " Sure, here is how.",
             "rejected": DIALOGUE.format(q="help me") + " No."},
            {"chosen": DIALOGUE.format(q="bye") + " Goodbye!", "rejected": DIALOGUE.format(q="bye") + "  Whatever. "}]
    loaded = load_data(str(write_jsonl(tmp_path / "hh.jsonl", rows)), adapter="hh_rlhf")
    samples = loaded.samples
    assert len(samples) == 4
    assert samples["prompt"][0] == DIALOGUE.format(q="help me")
    assert samples["prompt"][0].endswith("\n\nAssistant:")
    assert samples["response"].tolist() == ["Sure, here is how.", "No.", "Goodbye!", "Whatever."]
    assert samples["label"].tolist() == ["chosen", "rejected"] * 2
    assert samples["id"].is_unique
    pairs = load_pairs(str(tmp_path / "hh.jsonl"))
    assert pairs[["chosen", "rejected"]].values.tolist() == [["Sure, here is how.", "No."], ["Goodbye!", "Whatever."]]


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": \n', r"line 2 is not valid JSON"),
    ('{"prompt": "a", "response": "b"}\n[1, 2]\n', r"line 2 is a JSON list"),
    ('{"question": "a", "response": "b"}\n', r"has no column 'prompt' \(columns: question, response\)"),
    ("", r"has no samples"),
])
def test_bad_files_get_one_clear_sentence(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_data(str(path))


def test_missing_file_unknown_adapter_and_not_hh(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_data(str(tmp_path / "missing.jsonl"))
    path = write_jsonl(tmp_path / "d.jsonl", [{"chosen": "no turns here", "rejected": "x"}])
    with pytest.raises(UserError, match="row 1 has no"):
        load_data(str(path), adapter="hh_rlhf")
    with pytest.raises(UserError, match=r"unknown data.adapter"):
        load_data(str(path), adapter="nope")


@pytest.mark.realdata
def test_real_hh_rlhf(shared_data):
    files = [str(shared_data / "hh-rlhf" / "harmless.jsonl"), str(shared_data / "hh-rlhf" / "helpful.jsonl")]
    loaded = load_data(files, adapter="hh_rlhf")
    # Two of the harmless chosen replies are empty: left out, and named.
    assert len(loaded.samples) == 2 * (1851 + 925) - 2 and len(loaded.dropped) == 2
    assert all(sample_id.endswith(":chosen") for sample_id in loaded.dropped)
    assert loaded.samples["prompt"].str.endswith("\n\nAssistant:").all()
    assert (loaded.samples["response"].str.strip().str.len() > 0).all()
    with pytest.raises(UserError, match="has an empty response"):
        load_data(files, adapter="hh_rlhf", empty_text="error")
    assert not loaded.samples["response"].str.startswith(" ").any()
    # A few public rows have chosen/rejected that differ before the last reply: samples, but no clean pairs.
    pairs = load_pairs(files[0])
    assert 1800 < len(pairs) <= 1851


@pytest.mark.realdata
def test_real_scitldr(shared_data):
    samples = load_data(str(shared_data / "scitldr" / "SciTLDR-A-dev.jsonl"), adapter="scitldr").samples
    assert len(samples) >= 619  # one sample per (abstract, TL;DR); dev has several TL;DRs per paper
    assert samples["prompt"].str.startswith("### Instruction: Generate a one-sentence summary").all()
    assert samples["prompt"].str.endswith("### Response: ").all()
    assert samples["id"].is_unique


def test_heldout_split_is_stable_and_keeps_replies_together():
    from paretohqd.data import heldout_mask

    prompts = pd.Series([f"prompt {i % 50}" for i in range(500)])
    mask = heldout_mask(prompts, 0.2)
    assert 0.05 < mask.mean() < 0.4
    by_prompt = pd.DataFrame({"p": prompts, "m": mask}).groupby("p")["m"].nunique()
    assert (by_prompt == 1).all()  # every reply to a prompt is on the same side
    np.testing.assert_array_equal(mask, heldout_mask(prompts.iloc[::-1], 0.2)[::-1])
    assert not heldout_mask(prompts, 0.0).any()


def test_prompt_to_messages():
    from paretohqd.data import prompt_to_messages

    dialogue = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:"
    assert prompt_to_messages(dialogue) == [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "hello"},
                                            {"role": "user", "content": "how are you?"}]
    assert prompt_to_messages("Summarise this.", "Be brief.") == [{"role": "system", "content": "Be brief."},
                                                                  {"role": "user", "content": "Summarise this."}]


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(UserError, match="could not load Hub dataset 'no-such-org/no-such-set'"):
        load_data("no-such-org/no-such-set")


def test_invalid_utf8_own_source_column_and_id_equal_to_prompt(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": "\xff\xfe"}\n')
    with pytest.raises(UserError, match="line 2 is not UTF-8 text"):
        load_data(str(bad))
    own = write_jsonl(tmp_path / "own.jsonl", [{"prompt": "x", "response": "a", "source": "web"},
                                               {"prompt": "y", "response": "b", "source": "book"}])
    assert load_data(str(own)).samples["source"].tolist() == ["web", "book"]
    assert load_data(str(own), id_column="prompt").samples["id"].tolist() == ["x", "y"]


def test_distinct_prompts_keep_context_columns():
    from paretohqd.data import distinct_prompts

    samples = pd.DataFrame({"id": ["1", "2", "3"], "prompt": ["p", "p", "q"], "response": ["a", "b", "c"],
                            "post": ["abstract p", "abstract p", "abstract q"], "score": [1.0, 2.0, 3.0]})
    prompts = distinct_prompts(samples, drop=("score",))
    assert prompts.to_dict("records") == [{"prompt": "p", "post": "abstract p"}, {"prompt": "q", "post": "abstract q"}]


def test_fingerprint_is_the_hash_of_the_table_as_text_column_by_column():
    import hashlib

    from paretohqd.data import fingerprint

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(50)], "prompt": ["p"] * 50, "x": rng.normal(size=50),
                          "k": rng.integers(0, 5, 50), "none": [None] * 50})
    whole = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    names = "|".join(map(str, frame.columns)).encode()
    # The keys of the runs made so far:
    assert fingerprint(frame) == hashlib.sha256(whole.tobytes() + names).hexdigest()[:20]
    edited = frame.copy()
    edited.loc[3, "x"] += 1e-9
    assert fingerprint(edited) != fingerprint(frame)


def test_reading_a_slice_of_rows_reads_the_same_rows(tmp_path):
    from paretohqd import io

    frame = pd.DataFrame({"id": [f"r{i}" for i in range(5000)], "x": np.arange(5000.0), "t": ["a b"] * 5000})
    path = tmp_path / "samples.parquet"
    io.write_parquet(path, frame, row_group_size=1024)
    for start, stop in [(0, 10), (1020, 1030), (0, 5000), (4990, 5010), (6000, 6005), (1024, 2048)]:
        pd.testing.assert_frame_equal(io.read_parquet_rows(path, start, stop), frame.iloc[start:stop])


def test_a_truncated_column_travels_as_booleans_and_a_bad_value_is_named(tmp_path):
    rows = [{"prompt": "p", "response": "r1", "truncated": True}, {"prompt": "q", "response": "r2", "truncated": False}]
    samples = load_data(str(write_jsonl(tmp_path / "ok.jsonl", rows))).samples
    assert samples["truncated"].tolist() == [True, False] and samples["truncated"].dtype == bool
    rows[1]["truncated"] = "maybe"
    with pytest.raises(UserError, match=r"bad.jsonl row 2 has 'maybe' in column 'truncated', which must be true or"):
        load_data(str(write_jsonl(tmp_path / "bad.jsonl", rows)))


def test_test_prompts_are_drawn_across_the_sources_by_their_own_seed(tmp_path):
    """num_prompts takes a seeded sample of every source, not the head of the first file; the same prompts
    whatever the run's training seed."""
    from paretohqd.config import DataConfig, EvaluateConfig
    from paretohqd.pipeline.inputs import test_prompts

    first = write_jsonl(tmp_path / "red_team.jsonl", [{"prompt": f"harm {i}"} for i in range(50)])
    second = write_jsonl(tmp_path / "helpful.jsonl", [{"prompt": f"help {i}"} for i in range(50)])
    drawn = test_prompts(EvaluateConfig(source=[str(first), str(second)], num_prompts=20), DataConfig())
    assert drawn["prompt"].str.startswith("help").sum() >= 5 and drawn["prompt"].str.startswith("harm").sum() >= 5
    order = np.random.default_rng(0).permutation(100)[:20]
    every = [f"harm {i}" for i in range(50)] + [f"help {i}" for i in range(50)]
    assert drawn["prompt"].tolist() == [every[i] for i in order]
    in_file_order = test_prompts(EvaluateConfig(source=[str(first), str(second)], num_prompts=20, prompt_seed=None),
                                 DataConfig())
    assert in_file_order["prompt"].tolist() == every[:20]
