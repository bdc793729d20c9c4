"""TRL's standard dataset formats (``data.adapter: trl``), text and conversational, from files, saved datasets and
the Hub (the Hub call checked, never made); a malformed row is one sentence naming it and the format expected."""

import pandas as pd
import pytest

from paretohqd.data import load_data, load_prompts
from paretohqd.data.adapters import prompt_to_messages
from paretohqd.data.pairs import candidate_pairs
from paretohqd.errors import UserError


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


HH_PROMPT = "\n\nHuman: Is the sky blue?\n\nAssistant:"

# (format, rows, expected (prompt, response, label) per sample)
FORMATS = {
    "conversational language modeling": (
        [{"messages": [{"role": "system", "content": "Be brief."}, user("Hi"), assistant("Hello."),
                       user("Is the sky blue?"), assistant("Yes.")]}],
        [("\n\nSystem: Be brief.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Is the sky blue?\n\nAssistant:", "Yes.",
          None)]),
    "prompt-completion, text": (
        [{"prompt": "The sky is", "completion": " blue."}],
        [("The sky is", " blue.", None)]),
    "prompt-completion, conversational": (
        [{"prompt": [user("Is the sky blue?")], "completion": [assistant("Yes.")]}],
        [(HH_PROMPT, "Yes.", None)]),
    "unpaired preference, text": (
        [{"prompt": "The sky is", "completion": " blue.", "label": True},
         {"prompt": "The sky is", "completion": " green.", "label": False}],
        [("The sky is", " blue.", "chosen"), ("The sky is", " green.", "rejected")]),
    "unpaired preference, conversational": (
        [{"prompt": [user("Is the sky blue?")], "completion": [assistant("No.")], "label": False}],
        [(HH_PROMPT, "No.", "rejected")]),
    "preference, text": (
        [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}],
        [("The sky is", " blue.", "chosen"), ("The sky is", " green.", "rejected")]),
    "preference, conversational": (
        [{"prompt": [user("Is the sky blue?")], "chosen": [assistant("Yes.")], "rejected": [assistant("No.")]}],
        [(HH_PROMPT, "Yes.", "chosen"), (HH_PROMPT, "No.", "rejected")]),
    "implicit-prompt preference, text": (
        [{"chosen": HH_PROMPT + " Yes.", "rejected": HH_PROMPT + " No."}],
        [(HH_PROMPT, "Yes.", "chosen"), (HH_PROMPT, "No.", "rejected")]),
    "implicit-prompt preference, conversational": (
        [{"chosen": [user("Is the sky blue?"), assistant("Yes.")],
          "rejected": [user("Is the sky blue?"), assistant("No.")]}],
        [(HH_PROMPT, "Yes.", "chosen"), (HH_PROMPT, "No.", "rejected")]),
}


def write(rows, path, kind):
    frame = pd.DataFrame(rows)
    if kind == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif kind == "parquet":
        frame.to_parquet(path)
    else:
        import datasets

        datasets.Dataset.from_pandas(frame).save_to_disk(str(path))
    return str(path)


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "hf_disk"])
@pytest.mark.parametrize("name", list(FORMATS))
def test_every_trl_format_becomes_the_samples_it_holds(tmp_path, name, kind):
    rows, expected = FORMATS[name]
    source = write(rows, tmp_path / ("data" if kind == "hf_disk" else f"data.{kind}"), kind)
    samples = load_data(source, adapter="trl").samples
    got = [(row.prompt, row.response, getattr(row, "label", None)) for row in samples.itertuples()]
    assert got == expected
    assert samples["id"].is_unique
    if "preference" in name and "unpaired" not in name:  # the pairing MODPO and Soups' DPO train on
        first, second = candidate_pairs(samples)
        assert list(zip(samples["label"][first], samples["label"][second])) == [("chosen", "rejected")]


def test_a_conversation_reads_back_as_the_messages_it_came_from(tmp_path):
    rows, _ = FORMATS["conversational language modeling"]
    samples = load_data(write(rows, tmp_path / "d.jsonl", "jsonl"), adapter="trl").samples
    assert prompt_to_messages(samples["prompt"][0]) == rows[0]["messages"][:-1]
    assert prompt_to_messages(samples["prompt"][0], "Policy's own.")[0] == {
        "role": "system", "content": "Policy's own.\n\nBe brief."}


def test_other_columns_are_kept_and_an_id_column_names_the_samples(tmp_path):
    rows = [{"id": "a", "prompt": "Q", "chosen": "x", "rejected": "y", "topic": "sky"}]
    samples = load_data(write(rows, tmp_path / "d.jsonl", "jsonl"), adapter="trl", id_column="id").samples
    assert samples["id"].tolist() == ["a:chosen", "a:rejected"] and samples["topic"].tolist() == ["sky", "sky"]


def test_test_prompts_come_from_a_prompt_column_or_the_conversations_beginnings(tmp_path):
    prompt_only = write([{"prompt": [user("Is the sky blue?")]}], tmp_path / "p.jsonl", "jsonl")
    assert load_prompts(prompt_only, adapter="trl")["prompt"].tolist() == [HH_PROMPT]
    conversations = write(FORMATS["implicit-prompt preference, conversational"][0], tmp_path / "c.jsonl", "jsonl")
    assert load_prompts(conversations, adapter="trl")["prompt"].tolist() == [HH_PROMPT]


MALFORMED = [
    ({"messages": [user("Q"), user("again")]}, "row 2: 'messages' does not end with an assistant message"),
    ({"messages": [{"role": "robot", "content": "Q"}, assistant("A")]}, "row 2: 'messages' has a message whose role"),
    ({"messages": [user("Q"), {"role": "system", "content": "late"}, assistant("A")]},
     "row 2: 'messages' has a system message after the first message"),
    ({"messages": [user("Q"), {"role": "assistant", "content": 3}]}, "row 2: 'messages' is"),
    ({"messages": []}, "row 2: 'messages' is an empty conversation"),
    ({"messages": "just text"}, "row 2: 'messages' is 'just text', not a list of"),
]


@pytest.mark.parametrize("bad, said", MALFORMED)
def test_a_malformed_conversation_is_named_by_its_row_and_the_format_expected(tmp_path, bad, said):
    import json

    path = tmp_path / "d.jsonl"
    good = {"messages": [user("Q"), assistant("A")]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserError) as caught:
        load_data(str(path), adapter="trl")
    message = str(caught.value)
    assert said in message and str(path) in message and "\n" not in message
    assert "TRL's conversational format" in message


@pytest.mark.parametrize("rows, said", [
    ([{"chosen": [user("Q"), assistant("A")], "rejected": [user("Other"), assistant("B")]}],
     "row 1: 'chosen' and 'rejected' differ before their last reply"),
    ([{"chosen": "The sky is blue.", "rejected": "The sky is green."}],
     "row 1: 'chosen' is text with no '\\n\\nAssistant:' turn"),
    ([{"prompt": "Q", "completion": "A", "label": "yes"}], "row 1: 'label' is 'yes', not true or false"),
    ([{"text": "a whole document"}], "TRL's language modeling format, which has no prompt/reply split"),
    ([{"question": "Q", "answer": "A"}], "is in none of TRL's dataset formats"),
    ([{"prompt": "Q", "completion": 5}], "as its 'completion' value ('5'); prompts and responses must be text"),
])
def test_a_table_not_in_a_trl_format_says_which_row_and_what_was_expected(tmp_path, rows, said):
    with pytest.raises(UserError) as caught:
        load_data(write(rows, tmp_path / "d.jsonl", "jsonl"), adapter="trl")
    assert said in str(caught.value)


def test_a_hub_source_passes_name_data_dir_revision_and_split_to_datasets(monkeypatch):
    import datasets

    asked = []

    def load_dataset(path, **kwargs):
        asked.append((path, kwargs))
        dialogue = f"\n\nHuman: {kwargs['data_dir']}?\n\nAssistant:"
        return datasets.Dataset.from_dict({"chosen": [dialogue + " yes"], "rejected": [dialogue + " no"]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    sources = [{"path": "Anthropic/hh-rlhf", "data_dir": "harmless-base", "revision": "abc123"},
               {"path": "Anthropic/hh-rlhf", "data_dir": "helpful-base", "split": "test"}]
    samples = load_data(sources, adapter="hh_rlhf").samples
    assert asked == [("Anthropic/hh-rlhf", {"name": None, "data_dir": "harmless-base", "revision": "abc123",
                                             "split": "train"}),
                     ("Anthropic/hh-rlhf", {"name": None, "data_dir": "helpful-base", "revision": None,
                                             "split": "test"})]
    assert samples["id"].is_unique and samples["source"].nunique() == 2  # two subsets of one id stay apart


@pytest.mark.parametrize("source, said", [
    ({"path": "x.jsonl", "data_dir": "d"}, "sets 'data_dir', which only a Hub dataset takes"),
    ({"path": "org/name", "subset": "a"}, "unknown key 'subset'"),
    ({"data_dir": "a"}, "has no 'path'"),
    ({"path": "org/name", "revision": 3}, "'revision' must be text"),
])
def test_a_source_mapping_that_cannot_be_read_is_one_sentence(tmp_path, monkeypatch, source, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text('{"prompt": "Q", "response": "A"}\n')
    with pytest.raises(UserError) as caught:
        load_data(source)
    assert said in str(caught.value)


def test_the_local_recipes_read_the_files_they_name(tmp_path, monkeypatch):
    """recipes/<task>/local.yaml read HH-RLHF's and SciTLDR's own file formats from data/ (built here), as the Hub
    recipes read them from the Hub."""
    import json

    from paretohqd.cli import recipe_path
    from paretohqd.config import load_config
    from paretohqd.pipeline.inputs import test_prompts, training_samples

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "hh-rlhf").mkdir(parents=True)
    for name in ("harmless", "helpful"):
        rows = [{"chosen": f"\n\nHuman: {name} {i}?\n\nAssistant: yes", "rejected": f"\n\nHuman: {name} {i}?\n\n"
                 "Assistant: no"} for i in range(20)]
        (tmp_path / "data" / "hh-rlhf" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(recipe_path("hh_rlhf/local"))
    samples = training_samples(config.data)
    assert set(samples["source"]) == {"harmless", "helpful"} and 0 < len(samples) <= 80
    assert len(test_prompts(config.evaluate, config.data)) > 0  # the held-out tenth

    (tmp_path / "data" / "scitldr").mkdir()
    for split in ("train", "test"):
        rows = [{"source": ["An abstract.", f"Sentence {i}."], "target": ["A summary."], "paper_id": f"{split}{i}"}
                for i in range(4)]
        (tmp_path / "data" / "scitldr" / f"SciTLDR-A-{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(recipe_path("scitldr/local"))
    assert len(training_samples(config.data)) == 4 and len(test_prompts(config.evaluate, config.data)) == 4
