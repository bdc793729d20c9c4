"""paretohqd export: a preference of a finished run as a Hugging Face folder that plain transformers and peft load,
giving exactly the logits paretohqd's own serving gives."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard

import paretohqd
from paretohqd.cli import main
from paretohqd.config import ModelConfig
from paretohqd.errors import UserError
from paretohqd.pareto import preference_direction
from paretohqd.policy import EMBEDDED_DEFAULT, end_of_turn_ids

from .conftest import REPO
from .test_pipeline import write_run_config

WEIGHTS = [0.3, 0.7]
# name: (mode, merge); (0.3, 0.7) is no trained preference: nearest serves pref_01 (0.5, 0.5), interpolate mixes
# pref_01 and pref_02 (0, 1).
EXPORTS = {"adapter": (None, False), "interpolated": ("interpolate", False), "merged": ("interpolate", True)}
QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def finished_run(served_run):
    return served_run


@pytest.fixture(scope="module")
def exports(finished_run, tmp_path_factory):
    """Each export's folder, and what paretohqd's own serving gives for it: the logits on a fixed input and the
    end-of-turn ids (in ``expected.json`` and ``NAME.pt``, for a process that never imports paretohqd)."""
    out = tmp_path_factory.mktemp("exports")
    expected = {}
    for name, (mode, merge) in EXPORTS.items():
        folder = paretohqd.export(finished_run, WEIGHTS, out / name, merge=merge, mode=mode)
        served = paretohqd.load_policy(finished_run, WEIGHTS, mode)
        ids = served.tokenizer(served.chat_text("How do I bake bread?"), return_tensors="pt",
                               add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = served.model(ids).logits
        torch.save({"input_ids": ids, "logits": logits}, out / f"{name}.pt")
        expected[name] = {"folder": str(folder), "eos": end_of_turn_ids(served.tokenizer),
                          "pad": served.tokenizer.pad_token_id}
    (out / "expected.json").write_text(json.dumps(expected))
    return out


PLAIN_LOADING = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    out = Path(sys.argv[1])
    for name, facts in json.loads((out / "expected.json").read_text()).items():
        folder = Path(facts["folder"])
        reference = torch.load(out / f"{name}.pt")
        adapter_config = folder / "adapter_config.json"
        if adapter_config.exists():
            base = json.loads(adapter_config.read_text())["base_model_name_or_path"]
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(folder))
        else:
            model = AutoModelForCausalLM.from_pretrained(str(folder))
        with torch.inference_mode():
            logits = model(reference["input_ids"]).logits
        gap = (logits - reference["logits"]).abs().max()
        assert torch.allclose(logits, reference["logits"], atol=1e-5), (name, gap)
        generation = GenerationConfig.from_pretrained(str(folder))
        assert generation.eos_token_id == facts["eos"] and generation.pad_token_id == facts["pad"], name
        assert AutoTokenizer.from_pretrained(str(folder)).chat_template, name
        print(name, "ok")
    assert "paretohqd" not in sys.modules
""")


def test_exports_load_with_plain_transformers_and_peft_and_give_the_served_logits(exports, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", PLAIN_LOADING, str(exports)], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [word for name in EXPORTS for word in (name, "ok")]


def test_the_combined_adapter_is_one_adapter_of_the_summed_rank(exports, tiny_policy):
    nearest = json.loads((exports / "adapter" / "adapter_config.json").read_text())
    combined = json.loads((exports / "interpolated" / "adapter_config.json").read_text())
    assert nearest["r"] == 4 and combined["r"] == combined["lora_alpha"] == 8  # two rank-4 adapters
    assert nearest["base_model_name_or_path"] == combined["base_model_name_or_path"] == str(tiny_policy.resolve())
    assert sorted(p.name for p in (exports / "interpolated").iterdir() if p.is_dir()) == []  # flattened
    assert not (exports / "merged" / "adapter_config.json").exists()
    assert (exports / "merged" / "model.safetensors").exists() and (exports / "merged" / "config.json").exists()


def test_the_card_parses_and_says_what_the_model_is(exports, finished_run, tiny_policy):
    metrics = json.loads((finished_run / "eval" / "metrics.json").read_text())
    trained = {entry["model"]: entry for entry in metrics["preferences"]}
    for name, (mode, merge) in EXPORTS.items():
        card = ModelCard.load(exports / name / "README.md")
        assert card.data.base_model == str(tiny_policy.resolve())
        assert card.data.library_name == ("transformers" if merge else "peft")
        assert card.data.pipeline_tag == "text-generation"
        assert card.data.tags == ["paretohqd", "multi-objective-alignment"]
        own = card.data.paretohqd
        assert own["method"] == "paretohqd" and own["objectives"] == ["brevity", "vowels"]
        assert own["weights"] == WEIGHTS and own["mode"] == (mode or "nearest")
        np.testing.assert_allclose(own["direction"], preference_direction([WEIGHTS])[0])
        assert own["evaluation"]["hypervolume"]["hypervolume_minmax_run_worst"] == \
            metrics["hypervolume_minmax_run_worst"]
        assert "reference point" in card.text and "minmax normalisation" in card.text
        assert "ray of preference (0.5, 0.5)" in card.text  # its training data, from the selection
        record = json.loads((exports / name / "paretohqd.json").read_text())
        assert record["weights"] == WEIGHTS and record["made_from"] == own["made_from"]
        assert record["conditioning"] is None and record["base_model"]["source"] == "local"
    nearest = ModelCard.load(exports / "adapter" / "README.md")
    assert nearest.data.paretohqd["made_from"] == [{"model": "pref_01", "weights": [0.5, 0.5], "weight": 1.0}]
    assert nearest.data.paretohqd["evaluation"]["evaluated"] is True  # pref_01 itself was evaluated
    assert nearest.data.paretohqd["evaluation"]["mean_rewards"] == trained["pref_01"]["mean_rewards"]
    mixed = ModelCard.load(exports / "interpolated" / "README.md")
    assert {m["model"] for m in mixed.data.paretohqd["made_from"]} == {"pref_01", "pref_02"}
    assert mixed.data.paretohqd["evaluation"]["evaluated"] is False
    assert "not evaluated" in mixed.text and "pref_02 (preference (0, 1), share 0.4)" in mixed.text


def test_ric_export_says_which_reward_tokens_every_prompt_carries(tiny_policy, tmp_path):
    config_path = write_run_config(tmp_path, tiny_policy, stage2__enabled=False)
    raw = yaml.safe_load(config_path.read_text())
    raw["method"] = "ric"
    raw["ric"] = {"offline": {"sft": {"max_steps": 2}, "lora": {"r": 4, "lora_alpha": 8}}, "online": {"iterations": 0}}
    config_path.write_text(yaml.safe_dump(raw))
    paretohqd.run(paretohqd.load_config(str(config_path)), **QUIET)
    folder = paretohqd.export(tmp_path / "run", WEIGHTS, tmp_path / "ric_w03")
    served = paretohqd.load_policy(tmp_path / "run", WEIGHTS)
    record = json.loads((folder / "paretohqd.json").read_text())
    tokens = record["conditioning"]["reward_tokens"]
    assert tokens.startswith("<rm1_score> ") and " <rm2_score> " in tokens
    assert served.conditioned(["\n\nHuman: hi\n\nAssistant:"]) == [f"\n\nHuman: hi {tokens} \n\nAssistant:"]
    assert record["chat"]["example_chat_text"] == served.chat_text("\n\nHuman: hi\n\nAssistant:")
    card = ModelCard.load(folder / "README.md")
    assert card.data.paretohqd["conditioning"] == tokens and "rewards-in-context" in card.data.tags
    assert f"write `{tokens}` at the end of the last user message" in card.text
    assert "direction" not in card.text.split("## Training data")[0]  # a ParetoHqD notion only


def test_cli_export_and_its_refusals(finished_run, tmp_path, capsys):
    # The run's objectives include tests.helpers_objectives:vowel_share: the CLI process must import it as this one
    # does (from the repository root), or the callable's identity, and so the run's keys, would differ.
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PARETOHQD_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "paretohqd.cli", "export", str(finished_run), "--weights", "1,1",
                           "--output", str(tmp_path / "w05")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote" in done.stdout and "its model pref_01" in done.stderr
    assert ModelCard.load(tmp_path / "w05" / "README.md").data.paretohqd["evaluation"]["evaluated"] is True

    def refused(*args) -> str:
        capsys.readouterr()
        assert main(["export", str(finished_run), *args]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        return err

    assert "3 weights but there are 2 objectives" in refused("--weights", "1,2,3", "--output", str(tmp_path / "a"))
    assert "weights (-1.0, 1.0)" in refused("--weights", "-1,1", "--output", str(tmp_path / "a"))
    assert "exists and is not empty" in refused("--weights", "1,1", "--output", str(tmp_path / "w05"))
    assert "would replace the run" in refused("--weights", "1,1", "--output", str(finished_run))
    with pytest.raises(SystemExit, match="2"):  # argparse's refusal, in one sentence too
        main(["export", str(finished_run), "--weights", "1,1"])
    assert "required: --output" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.resolved.yaml").write_bytes((finished_run / "config.resolved.yaml").read_bytes())
    capsys.readouterr()
    assert main(["export", str(unfinished), "--weights", "1,1", "--output", str(tmp_path / "b")]) == 2
    assert "has not finished train/stage1/pref_01" in capsys.readouterr().err
    assert main(["export", str(finished_run), "--weights", "1,1", "--output", str(tmp_path / "w05"), "--merge",
                 "--overwrite"]) == 0
    assert (tmp_path / "w05" / "model.safetensors").exists() and not (tmp_path / "w05" / "adapter_config.json").exists()


def test_an_interrupted_export_leaves_no_folder_and_a_killed_ones_staging_goes(finished_run, tmp_path, monkeypatch):
    from paretohqd import exporting

    target = tmp_path / "export"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(exporting, "write_card", interrupted)
        with pytest.raises(KeyboardInterrupt):
            paretohqd.export(finished_run, WEIGHTS, target)
    assert list(tmp_path.iterdir()) == []
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / f"export.partial{dead.pid}"  # what an export killed with SIGKILL leaves
    (abandoned / "half").mkdir(parents=True)
    paretohqd.export(finished_run, WEIGHTS, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert (target / "adapter_model.safetensors").exists() and (target / "paretohqd.json").exists()


def test_cards_name_a_base_model_any_loader_takes(tmp_path, monkeypatch, finished_run, tiny_policy):
    from paretohqd import exporting
    from paretohqd.exporting import base_reference
    from paretohqd.policy import load
    from paretohqd.train import ModelCard as TrainingCard

    converted = tmp_path / "smollm2"
    converted.mkdir()
    (converted / ".complete").write_text("ok\n")
    monkeypatch.setattr(load, "embedded_cache", lambda: converted)
    stats = {"steps": 3, "global_batch_size": 2, "epochs": 1.0, "learning_rate": 0.05, "train_loss": 3.7,
             "seconds": 1.0}
    card_file = tmp_path / "README.md"
    for base, named in [(EMBEDDED_DEFAULT, str(converted)), ("HuggingFaceTB/SmolLM2-135M-Instruct",
                                                               "HuggingFaceTB/SmolLM2-135M-Instruct")]:
        card_file.write_text(TrainingCard("title", ["sft"], ["a fact"]).render(base, True, stats))
        card = ModelCard.load(card_file)
        assert card.data.base_model == named and card.data.library_name == "peft"
        assert card.data.tags == ["paretohqd", "sft"] and "- base model: " in card.text
    assert "derived from" not in card.text
    card_file.write_text(TrainingCard("title", [], []).render(EMBEDDED_DEFAULT, False, stats))
    assert "HuggingFaceTB/SmolLM2-135M-Instruct, from its Q4_1 GGUF" in ModelCard.load(card_file).text
    trained = ModelCard.load(finished_run / "models" / "pref_01" / "stage1" / "README.md")
    assert trained.data.base_model == str(tiny_policy.resolve())

    embedded = base_reference(ModelConfig(name_or_path=EMBEDDED_DEFAULT))
    assert (embedded.name_or_path, embedded.source) == (str(converted), "embedded")
    hub = base_reference(ModelConfig(name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct", revision="abc123"))
    assert (hub.name_or_path, hub.revision, hub.source) == ("HuggingFaceTB/SmolLM2-135M-Instruct", "abc123", "hub")
    gone = exporting.BaseModelReference(str(tmp_path / "deleted_base"), None, "local")
    monkeypatch.setattr(exporting, "base_reference", lambda model_config: gone)
    with pytest.raises(UserError, match=r"base model folder .* no longer exists"):
        paretohqd.export(finished_run, WEIGHTS, tmp_path / "out")
