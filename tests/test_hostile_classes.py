"""The catalogue's rows for the classes of bad input that reached tracebacks or gave wrong answers (issue 22), one
row per class and entry point, judged as the catalogue judges (``test_hostile.judge``): exit code, one
``paretohqd: error:`` line, no traceback, nothing partial, earlier results intact.

Classes: text that is not valid text (one reader, ``paretohqd.text``); damaged run-state files (one reader,
``pipeline.rundir.read_state``); numbers out of range on the command line (argparse types); column mappings that
collide (``data.adapters.check_column_mapping``); objectives whose model cannot load (``rewards.check_objective``,
before any work); and answers that were not what a user expects (advice for a copied run, ``--output`` that names a
folder, ``compare`` of one run twice or of objectives in another order, a few prompts' intervals, a trailing comma in
``--weights``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import paretohqd
from paretohqd.errors import UserError

from .test_hostile import cli, config_with, judge, rows, snapshot, write_rows

# ------------------------------------------------------------------------------------- text that is not valid text


def _prompts_file(tmp: Path, text: str) -> Path:
    path = tmp / "prompts.jsonl"
    path.write_text(text)
    return path


def test_a_prompt_argument_that_is_not_utf8_is_one_sentence(served_run, tmp_path):
    judge(cli("generate", served_run, "--weights", "1,0", "--prompt", "caf\udce9"),
          r"the value of --prompt is not valid text", r"byte 0xe9, which is not UTF-8", root=tmp_path)


def test_a_config_override_that_is_not_utf8_is_one_sentence(tmp_path):
    judge(cli("score", config_with(tmp_path), "--data.source", "data\udcff.jsonl"),
          r"the value of --data.source is not valid text", root=tmp_path)
    assert not (tmp_path / "run").exists()


def test_a_config_value_that_is_not_valid_text_is_one_sentence_from_python(tmp_path):
    with pytest.raises(UserError, match=r"config key data.source is not valid text: it holds a lone surrogate"):
        paretohqd.load_config(config_with(tmp_path), data={"source": "data\ud800.jsonl"})


@pytest.mark.parametrize("text, patterns", [
    ('{"prompt": "bad \\ud800 text"}\n', [r"prompts.jsonl line 1 is not valid text", r"\\ud800"]),
    ('{"prompt": "fine"}\n{"prompt": null}\n', [r"prompts.jsonl row 2 has no 'prompt' value"]),
    ('{"prompt": "fine"}\n{"other": 1}\n', [r"prompts.jsonl row 2 has no 'prompt' value"]),
], ids=["lone-surrogate", "null-prompt", "missing-prompt"])
def test_a_prompts_file_with_text_that_is_not_text(served_run, tmp_path, text, patterns):
    prompts = _prompts_file(tmp_path, text)
    judge(cli("generate", served_run, "--weights", "1,0", "--prompts", prompts, "--output", tmp_path / "out.jsonl"),
          *patterns, root=tmp_path)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_data_file_with_a_lone_surrogate_is_one_sentence(tmp_path):
    records = rows()
    path = write_rows(tmp_path / "data.jsonl", records)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace('"response": "', '"response": "\\udc80 ')
    path.write_text("\n".join(lines) + "\n")
    judge(cli("score", config_with(tmp_path)), r"data.jsonl line 4 is not valid text", root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


def test_test_prompts_with_a_null_prompt_are_refused_at_plan_time(tmp_path):
    prompts = _prompts_file(tmp_path, '{"question": "a"}\n{"question": null}\n')
    text_objectives = [{"name": "brevity", "builtin": "conciseness"},
                       {"name": "vowels", "type": "callable", "callable": "tests.helpers_objectives:vowel_share"}]
    config = config_with(tmp_path, objectives=text_objectives,
                         evaluate={"source": str(prompts), "prompt_column": "question"})
    judge(cli("plan", config), r"prompts.jsonl row 2 has no 'question' value", root=tmp_path)


def test_a_categorical_parquet_column_is_read_as_its_text(tmp_path):
    """Dictionary-encoded text (pandas' category, Arrow's dictionary) is text: the samples are the same as from the
    plain column, and so are the scores and the key."""
    frame = pd.DataFrame(rows())
    plain, categorical = tmp_path / "plain.parquet", tmp_path / "categorical.parquet"
    frame.to_parquet(plain)
    frame.astype({"prompt": "category", "response": "category"}).to_parquet(categorical)
    samples = [paretohqd.load_config(config_with(tmp_path, data={"source": str(path)})) for path in
               (plain, categorical)]
    from paretohqd.pipeline.inputs import training_samples

    first, second = (training_samples(config.data) for config in samples)
    assert first[["id", "prompt", "response"]].astype(str).equals(second[["id", "prompt", "response"]].astype(str))


# ------------------------------------------------------------------------------------------ damaged run-state files


@pytest.fixture
def copied_run(served_run, tmp_path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(served_run, copy)
    return copy


DAMAGE = {
    "garbage": b"{not json",
    "not-utf8": b'{"units": "\xff\xfe"}',
    "a-list": b"[1, 2, 3]",
    "units-not-records": b'{"units": {"score": 5}}',
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["status", "run", "generate"])
def test_a_damaged_manifest_is_one_sentence_naming_it_and_what_to_do(copied_run, damage, command):
    (copied_run / "manifest.json").write_bytes(DAMAGE[damage])
    before = snapshot(copied_run)
    argv = {"status": ["status", copied_run],
            "run": ["run", copied_run / "config.resolved.yaml", "--output_dir", copied_run],
            "generate": ["generate", copied_run, "--weights", "1,0", "--prompt", "hi"]}[command]
    judge(cli(*argv), r"copy/manifest.json is damaged", r"restore it from a copy of the run, or delete it",
          root=copied_run, before=before, run=None)
    assert (copied_run / "manifest.json").read_bytes() == DAMAGE[damage]  # nothing rewritten over it


@pytest.mark.parametrize("damage", ["garbage", "not-utf8", "a-list"])
@pytest.mark.parametrize("command", ["compare", "export", "push"])
def test_damaged_metrics_name_the_file_and_the_command_that_rebuilds_it(copied_run, tmp_path, damage, command):
    (copied_run / "eval" / "metrics.json").write_bytes(DAMAGE[damage])
    argv = {"compare": ["compare", copied_run, "--output", tmp_path / "compared"],
            "export": ["export", copied_run, "--weights", "1,0", "--output", tmp_path / "exported"],
            "push": ["push", copied_run, "--repo-prefix", "org/name", "--dry-run", tmp_path / "pushed"]}[command]
    advice = rf"paretohqd evaluate {copied_run}/config.resolved.yaml --output_dir {copied_run}"
    judge(cli(*argv), r"eval/metrics.json is damaged", advice.replace(".", r"\."), root=tmp_path)
    assert not (tmp_path / "compared").exists() and not (tmp_path / "exported").exists()


def test_damaged_evaluation_scores_are_one_sentence_and_the_advice_rebuilds_them(copied_run, tmp_path):
    scores = copied_run / "eval" / "scores.parquet"
    scores.write_bytes(b"PAR1 not a parquet file")
    judge(cli("compare", copied_run, "--output", tmp_path / "compared"), r"eval/scores.parquet is damaged",
          r"paretohqd evaluate .*copy/config.resolved.yaml --output_dir .*copy", root=tmp_path)
    # the advice, followed, rebuilds the file in the copy itself (not in the run it was copied from)
    assert cli("evaluate", copied_run / "config.resolved.yaml", "--output_dir", copied_run).code == 0
    assert cli("compare", copied_run, "--output", tmp_path / "compared").code == 0


# ------------------------------------------------------------------------ numbers out of range on the command line


@pytest.mark.parametrize("argv, pattern", [
    (["generate", "{run}", "--weights", "1,0", "--prompt", "hi", "--seed", str(2**70)],
     r"argument --seed: a seed must be a whole number from 0 to 4,294,967,295"),
    (["generate", "{run}", "--weights", "1,0", "--prompt", "hi", "--seed", "-1"], r"a seed must be a whole number"),
    (["compare", "{run}", "--bootstrap-seed", "-1"], r"argument --bootstrap_seed/--bootstrap-seed: a seed must be"),
    (["compare", "{run}", "--bootstrap", str(10**9)], r"the bootstrap count must be a whole number from 1 to 100,000"),
    (["compare", "{run}", "--bootstrap", "0"], r"the bootstrap count must be a whole number from 1"),
    (["rewards", "fit", "--data", "x.jsonl", "--output", "h.npz", "--seed", str(2**64)], r"a seed must be"),
    (["rewards", "fit", "--data", "x.jsonl", "--output", "h.npz", "--heldout-fraction", "1.5"],
     r"must be between 0 and 1"),
], ids=["serve-seed-2^70", "serve-seed-negative", "bootstrap-seed-negative", "bootstrap-count-huge",
        "bootstrap-count-zero", "fit-seed-2^64", "fit-heldout-1.5"])
def test_numbers_out_of_range_are_refused_by_the_parser(served_run, tmp_path, argv, pattern):
    judge(cli(*[a.format(run=served_run) for a in argv]), pattern, root=tmp_path)


@pytest.mark.parametrize("override, pattern", [
    (["--evaluate.prompt_seed", "-1"], r"prompt_seed must be in \[0, 2\^32\)"),
    (["--seed", str(2**70)], r"seed must be in \[0, "),
])
def test_seeds_out_of_range_in_a_config_are_refused_before_any_work(tmp_path, override, pattern):
    judge(cli("score", config_with(tmp_path), *override), pattern, root=tmp_path)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ column mappings collide


@pytest.mark.parametrize("data, pattern", [
    ({"prompt_column": "response"}, r"data.prompt_column and data.response_column are both 'response'"),
    ({"response_column": "prompt"}, r"are both 'prompt'"),
    ({"response_column": "answer"}, r"already has a column 'response', and data.response_column 'answer'"),
    ({"prompt_column": "question"}, r"already has a column 'prompt', and data.prompt_column 'question'"),
], ids=["prompt-is-response", "response-is-prompt", "response-renamed-onto-response",
        "prompt-renamed-onto-prompt"])
def test_column_mappings_that_collide(tmp_path, data, pattern):
    write_rows(tmp_path / "data.jsonl", [{**r, "answer": "x", "question": "q"} for r in rows()])
    judge(cli("score", config_with(tmp_path, data=data)), pattern, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


# ------------------------------------------------------------------------------- objectives whose model cannot load


def _reward_folder(tmp: Path, kind: str, tiny_reward_model: Path) -> str:
    folder = tmp / "rm"
    if kind == "missing":
        return str(folder)
    if kind == "file":
        folder.write_text("not a model")
        return str(folder)
    folder.mkdir()
    if kind == "adapter":
        (folder / "adapter_config.json").write_text("{}")
    elif kind == "no-weights":
        shutil.copy(tiny_reward_model / "config.json", folder)
    elif kind == "no-tokenizer":
        for file in tiny_reward_model.iterdir():
            if not file.name.startswith(("tokenizer", "special_tokens")):
                shutil.copy(file, folder)
    return str(folder)


@pytest.mark.parametrize("kind, pattern", [
    ("missing", r"objective 'rm': model '.*rm': no such folder"),
    ("empty", r"objective 'rm': model '.*rm' holds no model: it has no config.json"),
    ("file", r"objective 'rm': model '.*rm' is a file"),
    ("adapter", r"objective 'rm': model '.*rm' holds a LoRA adapter"),
    ("no-weights", r"objective 'rm': model '.*rm' holds no weights"),
    ("no-tokenizer", r"objective 'rm': model '.*rm' has no tokenizer"),
])
def test_an_objective_model_that_cannot_load_fails_before_any_scoring(tmp_path, tiny_reward_model, kind, pattern):
    model = _reward_folder(tmp_path, kind, tiny_reward_model)
    objectives = [{"name": "rm", "type": "hf", "model": model}, {"name": "obj_b", "type": "column", "column": "b"}]
    judge(cli("score", config_with(tmp_path, objectives=objectives)), pattern, root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


def test_a_logit_index_the_reward_model_has_no_output_for(tmp_path, tiny_reward_model):
    objectives = [{"name": "rm", "type": "hf", "model": str(tiny_reward_model), "logit_index": 3},
                  {"name": "obj_b", "type": "column", "column": "b"}]
    judge(cli("score", config_with(tmp_path, objectives=objectives)),
          r"objective 'rm': logit_index 3, but the model '.*' has 1 output", root=tmp_path)
    assert not (tmp_path / "run" / "scores").exists()


# ------------------------------------------------------------------------------- answers a user would not expect


def test_advice_for_a_copied_run_names_the_copy(copied_run, tmp_path):
    manifest = json.loads((copied_run / "manifest.json").read_text())
    name = next(n for n, e in manifest["units"].items() if e["kind"] == "sft")
    del manifest["units"][name]
    (copied_run / "manifest.json").write_text(json.dumps(manifest))
    result = cli("generate", copied_run, "--weights", "1,0", "--prompt", "hi")
    judge(result, rf"paretohqd train {copied_run}/config\.resolved\.yaml --output_dir {copied_run}", root=tmp_path)


@pytest.mark.parametrize("output, pattern", [
    ("new_folder/", r"--output 'new_folder/' is a folder: give a file name"),
    ("a_file/out.jsonl", r"'a_file' is a file, so nothing can be written under it"),
])
def test_an_output_that_cannot_be_a_file_is_refused_before_the_model_loads(served_run, tmp_path, monkeypatch,
                                                                          output, pattern):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("here")
    from paretohqd import serving

    monkeypatch.setattr(serving, "load_policy", lambda *a, **k: pytest.fail("the model was loaded"))
    judge(cli("generate", served_run, "--weights", "1,0", "--prompt", "hi", "--output", output), pattern,
          root=tmp_path)
    assert not (tmp_path / "new_folder").exists()


def test_compare_refuses_one_run_given_twice(served_run, tmp_path):
    judge(cli("compare", served_run, f"{served_run}/", "--output", tmp_path / "c"), r"is given twice", root=tmp_path)


def test_compare_takes_runs_whose_objectives_are_in_another_order(copied_run, served_run, tmp_path):
    metrics_path = copied_run / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())

    def reversed_per_objective(node, key=None):
        if isinstance(node, dict):
            return {k: reversed_per_objective(v, k) for k, v in node.items()}
        if isinstance(node, list):
            if key in ("objectives", "weights", "mean_rewards", "raw") and len(node) == 2:
                return node[::-1]
            return [reversed_per_objective(v) for v in node]
        return node

    metrics_path.write_text(json.dumps(reversed_per_objective(metrics)))
    plain = paretohqd.compare([str(served_run)], tmp_path / "plain")
    swapped = paretohqd.compare([str(copied_run)], tmp_path / "swapped")
    both = paretohqd.compare([str(served_run), str(copied_run)], tmp_path / "both")
    field = both["hypervolume_field"]
    assert swapped["objectives"] == plain["objectives"][::-1]
    assert both["runs"][0][field] == pytest.approx(both["runs"][1][field]) == pytest.approx(plain["runs"][0][field])


def test_compare_says_when_its_intervals_rest_on_a_few_prompts(served_run, tmp_path):
    result = paretohqd.compare([str(served_run)], tmp_path / "c")
    assert any("Only 3 test prompts" in note and "can pass 1" in note for note in result["notes"])


@pytest.mark.parametrize("argv", [
    ["generate", "{run}", "--weights", "0.5,0.5,", "--prompt", "hi"],
    ["generate", "{run}", "--weights", ",0.5", "--prompt", "hi"],
    ["export", "{run}", "--weights", "1,,0", "--output", "{tmp}/out"],
    ["push", "{run}", "--repo-prefix", "org/name", "--served", "0.5,0.5,", "--dry-run", "{tmp}/pushed"],
], ids=["trailing-comma", "leading-comma", "double-comma", "push-served-trailing-comma"])
def test_an_empty_place_in_a_weight_list_is_refused(served_run, tmp_path, argv):
    result = cli(*[a.format(run=served_run, tmp=tmp_path) for a in argv])
    judge(result, r"must be numbers separated by commas", root=tmp_path)
    assert not (tmp_path / "out").exists() and not (tmp_path / "pushed").exists()


def test_a_file_system_refusal_without_a_reason_still_says_what_and_which_file():
    """pyarrow raises ``FileNotFoundError(path)``: no errno, no reason, the path as its whole text (the hostile pass
    saw "paretohqd: error: /root/run/samples.parquet" and nothing else)."""
    from paretohqd.errors import describe_os_error

    assert describe_os_error(FileNotFoundError("/x/samples.parquet")) == (
        "No such file or directory: '/x/samples.parquet'")
    assert describe_os_error(PermissionError(13, "Permission denied", "/x/y")) == "Permission denied: '/x/y'"
