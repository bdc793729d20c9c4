"""The vLLM generation backend against a fake ``vllm`` package (tests/fake_vllm: the real 0.33.0 interface, with
deterministic completions): what reaches the engine, how outputs come back, and whole runs with it."""

import contextlib
import functools
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from paretohqd.cli import main
from paretohqd.config import GenerationConfig, ModelConfig, SamplingConfig, load_config
from paretohqd.errors import UserError
from paretohqd.pipeline.generate import generation_unit, run_generation_group
from paretohqd.pipeline.units import Unit, UnitContext
from paretohqd.policy import Policy, clean_response, vllm_backend
from paretohqd.policy.generation import cut_at_turn
from paretohqd.policy.vllm_backend import (
    NOT_INSTALLED,
    PROMPT_SEED_STRIDE,
    ModelPrompts,
    ServedModel,
    generate_with_vllm,
    prepare_models,
    vllm_lora_rank,
)

from .test_pipeline import write_run_config

FAKE_VLLM = Path(__file__).resolve().parent / "fake_vllm"
VLLM = {"backend": "vllm", "vllm": {"gpu_memory_utilization": 0.5}}


@contextlib.contextmanager
def fake_vllm_installed():
    """The fake package importable as ``vllm`` (and nothing of it left behind afterwards)."""
    def forget() -> None:
        for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
            del sys.modules[name]

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(FAKE_VLLM))
        forget()  # a real vLLM imported earlier must not answer
        import vllm

        assert vllm.__file__.startswith(str(FAKE_VLLM))
        try:
            yield vllm
        finally:
            vllm_backend.release_engine()
            forget()


@pytest.fixture
def fake_vllm():
    with fake_vllm_installed() as vllm:
        yield vllm


def fake_adapter(folder: Path, rank: int) -> str:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": rank, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(folder.name.encode())
    return str(folder)


def decoded(tokenizer, output) -> str:
    return clean_response(tokenizer.decode(output.outputs[0].token_ids, skip_special_tokens=True))


def test_requests_engine_arguments_sampling_and_output_order(fake_vllm, tiny_policy, tmp_path):
    from transformers import AutoTokenizer

    base = str(tiny_policy)
    first, second = fake_adapter(tmp_path / "a", 4), fake_adapter(tmp_path / "b", 12)
    model_config = ModelConfig(name_or_path=base, max_prompt_length=6)
    long_prompt = "\n\nHuman: " + " ".join(["the cat sat on a mat"] * 4) + "?\n\nAssistant:"
    sampled = SamplingConfig(max_new_tokens=6, temperature=0.7, top_p=0.9, top_k=5)
    requests = [ModelPrompts(ServedModel(base, None, base), [long_prompt, "\n\nHuman: hello?\n\nAssistant:"],
                             SamplingConfig(max_new_tokens=5, do_sample=False), 3),
                ModelPrompts(ServedModel(base, first, base), ["\n\nHuman: why?\n\nAssistant:"] * 3, sampled, 11),
                ModelPrompts(ServedModel(base, second, base), ["\n\nHuman: how?\n\nAssistant:", "yes"], sampled, 11)]
    answers = generate_with_vllm(requests, model_config, {"gpu_memory_utilization": 0.5})

    [engine] = fake_vllm.RECORD["engines"]
    assert engine.model == base and {k: engine.args[k] for k in ("enable_lora", "max_loras", "max_lora_rank", "dtype",
                                                                 "seed", "gpu_memory_utilization")} == \
        {"enable_lora": True, "max_loras": 2, "max_lora_rank": 16, "dtype": "float32", "seed": 0,
         "gpu_memory_utilization": 0.5}  # rank 12 is served by vLLM's next allowed rank
    [call] = fake_vllm.RECORD["generate"]  # every model's prompts in one engine call
    tokenizer = AutoTokenizer.from_pretrained(base)
    policy = Policy(None, tokenizer, None, 6)
    prompts = [p for r in requests for p in r.prompts]
    # The HF path's input: the policy's chat text with the left cut, tokenized without special tokens.
    assert call["prompt_token_ids"] == tokenizer([policy.chat_text(p) for p in prompts],
                                                 add_special_tokens=False)["input_ids"]
    assert policy.chat_text(long_prompt) != Policy(None, tokenizer, None, 384).chat_text(long_prompt)
    loras = call["loras"]
    assert loras[:2] == [None, None] and {r.lora_path for r in loras[2:5]} == {first} and \
        [r.lora_path for r in loras[5:]] == [second, second]
    assert loras[2].lora_int_id == loras[4].lora_int_id != loras[5].lora_int_id
    params = call["params"]
    eos = policy.end_of_turn_ids
    assert [(p.temperature, p.top_p, p.top_k, p.max_tokens) for p in params[:2]] == [(0.0, 1.0, 0, 5)] * 2  # greedy
    assert all((p.temperature, p.top_p, p.top_k, p.max_tokens) == (0.7, 0.9, 5, 6) for p in params[2:])
    assert all(p.stop_token_ids == eos and p.detokenize is False for p in params)
    assert [p.seed for p in params] == [3 * PROMPT_SEED_STRIDE + i for i in range(2)] + \
        [11 * PROMPT_SEED_STRIDE + i for i in range(3)] + [11 * PROMPT_SEED_STRIDE + i for i in range(2)]
    # Answers come back per request, in prompt order, decoded and cleaned as in HF generation.
    assert [len(a.responses) for a in answers] == [2, 3, 2]
    assert [r for a in answers for r in a.responses] == [decoded(tokenizer, o) for o in call["outputs"]]
    assert len(set(answers[1].responses)) == 3  # one prompt, three prompt seeds
    record = answers[1].record
    assert record["sampling_params"] == {"max_tokens": 6, "stop_token_ids": eos, "detokenize": False,
                                         "temperature": 0.7, "top_p": 0.9, "top_k": 5,
                                         "seed": f"11 * {PROMPT_SEED_STRIDE} + prompt index"}
    assert record["engine"]["max_lora_rank"] == 16 and record["adapter"] == first


def test_an_engine_gets_the_gpu_share_that_is_free_after_this_process_lets_go(fake_vllm, tiny_policy, monkeypatch):
    """vLLM refuses to start when gpu_memory_utilization (default 0.9) of the whole GPU is more than is free; a
    process that trained or scored there first holds some. No GPU here: torch.cuda reports 30 of 80 GiB free once
    its cache is emptied, and the reward models the process kept are let go before the engine starts."""
    import torch

    events = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: events.append("mem_get_info") or (30 * 2**30, 80 * 2**30))
    base = str(tiny_policy)
    request = [ModelPrompts(ServedModel(base, None, base), ["\n\nHuman: hi?\n\nAssistant:"], SamplingConfig(
        max_new_tokens=3), 0)]
    generate_with_vllm(request, ModelConfig(name_or_path=base), {})
    assert fake_vllm.RECORD["engines"][-1].args["gpu_memory_utilization"] == 0.32  # 30/80 less 5% headroom
    assert events[-2:] == ["empty_cache", "mem_get_info"]
    vllm_backend.release_engine()
    generate_with_vllm(request, ModelConfig(name_or_path=base), {"gpu_memory_utilization": 0.6})  # the user's word
    assert fake_vllm.RECORD["engines"][-1].args["gpu_memory_utilization"] == 0.6
    vllm_backend.release_engine()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (2 * 2**30, 80 * 2**30))
    with pytest.raises(UserError, match=r"2.0 GiB of the GPU's 80.0 GiB are free"):
        generate_with_vllm(request, ModelConfig(name_or_path=base), {})



def test_engine_is_cached_and_rebuilt_only_for_more_adapters_or_a_higher_rank(fake_vllm, tiny_policy, tmp_path):
    base = str(tiny_policy)
    small, large = fake_adapter(tmp_path / "small", 4), fake_adapter(tmp_path / "large", 24)
    model_config = ModelConfig(name_or_path=base)
    sampling = SamplingConfig(max_new_tokens=3)

    def ask(*adapters):
        return generate_with_vllm([ModelPrompts(ServedModel(base, a, base), ["hello"], sampling, 0) for a in adapters],
                                  model_config)

    ask(small)
    ask(small, None)
    engines = fake_vllm.RECORD["engines"]
    assert len(engines) == 1 and (engines[0].args["max_loras"], engines[0].args["max_lora_rank"]) == (1, 8)
    ask(small, large)
    assert len(engines) == 2 and engines[0].shut_down and not engines[1].shut_down
    assert (engines[1].args["max_loras"], engines[1].args["max_lora_rank"]) == (2, 32)
    ask(large)
    assert len(engines) == 2  # room enough: no rebuild
    calls = fake_vllm.RECORD["generate"]
    assert calls[0]["loras"][0].lora_int_id == calls[1]["loras"][0].lora_int_id  # same adapter, same id
    assert len({r.lora_int_id for r in calls[2]["loras"]}) == 2


def test_lora_ranks_round_up_to_what_vllm_accepts():
    assert [vllm_lora_rank(r) for r in (1, 2, 8, 9, 16, 24, 65, 300, 512)] == [1, 8, 8, 16, 16, 32, 128, 320, 512]
    with pytest.raises(UserError, match="LoRA rank 513 is above 512"):
        vllm_lora_rank(513)


def test_missing_vllm_is_one_sentence_before_any_work(tiny_policy, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # not importable, whatever is installed
    with pytest.raises(UserError, match="pip install 'paretohqd\\[vllm\\]'"):
        vllm_backend.import_vllm()
    config_path = write_run_config(tmp_path, tiny_policy)
    assert main(["run", str(config_path), "--generation.backend", "vllm"]) == 2
    err = capsys.readouterr().err
    assert NOT_INSTALLED in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "scores").exists()


def test_backend_setting_in_key_and_group(tiny_policy):
    prompts = Unit(name="prompts", kind="input", stage="inputs", command="run", action=print, outputs=("p.parquet",))
    model = ModelConfig(name_or_path=str(tiny_policy))

    def unit(generation, name="generate/x"):
        return generation_unit(name, "generate", "generate", f"{name}.jsonl", prompts, model, SamplingConfig(), 0,
                               generation=generation)

    hf = unit(GenerationConfig())
    assert "backend" not in hf.settings and not hf.group  # the HF keys of earlier runs stay valid
    assert unit(GenerationConfig(vllm={"gpu_memory_utilization": 0.3})).key == hf.key
    vllm_units = [unit(GenerationConfig(backend="vllm", vllm={"max_model_len": 512}), name) for name in ("a", "b")]
    assert vllm_units[0].key != hf.key and vllm_units[0].settings["backend"] == "vllm"
    assert vllm_units[0].group.startswith("vllm:") and vllm_units[0].group == vllm_units[1].group
    assert vllm_units[0].group_action is run_generation_group
    assert vllm_units[0].options["vllm"] == {"max_model_len": 512}
    assert unit(GenerationConfig(backend="vllm", vllm={"gpu_memory_utilization": 0.3})).key == vllm_units[0].key


def mark_targets(prompts, inputs, marker):
    return [f"{p} {marker}" for p in prompts]


def test_group_builds_each_members_prompts_and_writes_its_own_file(fake_vllm, tiny_policy, tmp_path):
    """A condition (RiC's target rewards) and a prompt sample (stage 2) are applied per member, in one call."""
    table = tmp_path / "samples.parquet"
    pd.DataFrame({"prompt": [f"\n\nHuman: q{i}?\n\nAssistant:" for i in range(6)], "response": ["r"] * 6,
                  "post": [f"post {i}" for i in range(6)]}).to_parquet(table)
    prompts = Unit(name="prompts", kind="input", stage="inputs", command="run", action=print, outputs=(str(table),))
    model = ModelConfig(name_or_path=str(tiny_policy))
    generation = GenerationConfig(backend="vllm")
    sampling = SamplingConfig(max_new_tokens=4)
    conditioned = generation_unit("gen/conditioned", "generate", "generate", "conditioned.jsonl", prompts, model,
                                  sampling, 5, condition=functools.partial(mark_targets, marker="<t> 1.00"),
                                  condition_settings={"marker": "<t> 1.00"}, generation=generation)
    sampled = generation_unit("gen/sampled", "generate", "generate", "sampled.jsonl", prompts, model, sampling, 7,
                              prompt_sample={"count": 3, "seed": 0, "drop": []}, generation=generation)
    contexts = [UnitContext(u.name, u.settings, u.options, {"prompts": [table]},
                            [tmp_path / u.outputs[0], tmp_path / u.outputs[1]], log=lambda *_: None)
                for u in (conditioned, sampled)]
    from paretohqd.pipeline import built_objectives

    built_objectives._BUILT["a reward model scored with earlier"] = object()
    run_generation_group(contexts)
    assert built_objectives._BUILT == {}  # let go before the engine started: it needs the GPU memory

    [call] = fake_vllm.RECORD["generate"]
    assert len(call["prompt_token_ids"]) == 6 + 3
    from transformers import AutoTokenizer

    policy = Policy(None, AutoTokenizer.from_pretrained(tiny_policy))
    first = pd.read_json(tmp_path / "conditioned.jsonl", lines=True)
    assert first["prompt"].tolist() == pd.read_parquet(table)["prompt"].tolist()  # the file keeps the original
    assert call["prompt_token_ids"][0] == policy.tokenizer(policy.chat_text(first["prompt"][0] + " <t> 1.00"),
                                                           add_special_tokens=False)["input_ids"]
    second = pd.read_json(tmp_path / "sampled.jsonl", lines=True)
    assert len(second) == 3 and second["prompt_id"].is_unique and "post" in second  # context columns kept
    assert second["response"].tolist() == [decoded(policy.tokenizer, o) for o in call["outputs"][6:]]
    meta = json.loads((tmp_path / "sampled.meta.json").read_text())
    assert meta["backend"] == "vllm" and meta["num_prompts"] == 3 and meta["sampling"]["seed"] == 7
    assert meta["vllm"]["group_size"] == 2 and "enable_lora" not in meta["vllm"]["engine"]  # no adapters


# ------------------------------------------------------------------------------------------------ whole runs


def vllm_config(tmp_path, tiny_policy, **extra):
    config_path = write_run_config(tmp_path, tiny_policy)
    raw = yaml.safe_load(config_path.read_text())
    raw.update(generation=VLLM, **extra)
    config_path.write_text(yaml.safe_dump(raw))
    return config_path


@pytest.fixture(scope="module")
def paretohqd_vllm_run(tiny_policy, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("vllm_run")
    config_path = vllm_config(tmp_path, tiny_policy)
    with fake_vllm_installed() as vllm:
        assert main(["run", str(config_path)]) == 0
        record = {"engines": list(vllm.RECORD["engines"]), "generate": list(vllm.RECORD["generate"])}
    return tmp_path / "run", config_path, record


def calls_with(record, fragment):
    return [c for c in record["generate"] if any(r is not None and fragment in r.lora_path for r in c["loras"])]


def test_paretohqd_run_generates_each_group_in_one_engine_call(paretohqd_vllm_run):
    run, _, record = paretohqd_vllm_run
    assert json.loads((run / "eval" / "metrics.json").read_text())["num_test_prompts"] == 3
    # Two engine calls in all: whatever is ready once the stage-1 models have trained (stage 2's data from the three
    # representative stage-1 models, 5 prompts each; the stage-1 models' and the base model's held-out replies,
    # 3 prompts each), then every final model's held-out replies (those need stage 2's data: not waited for).
    assert len(record["generate"]) == 2
    stage2, held_out = record["generate"]
    stage1_models = [str(run / "models" / f"pref_{i:02d}" / "stage1") for i in range(3)]
    assert sorted({r.lora_path for r in stage2["loras"] if r}) == stage1_models
    assert sum(r is not None for r in stage2["loras"]) == 15 + 9 and sum(r is None for r in stage2["loras"]) == 3
    adapters = [r.lora_path for r in held_out["loras"] if r]
    assert len(adapters) == 9 and sorted(set(adapters)) == [str(run / "models" / f"pref_{i:02d}" / "stage2")
                                                            for i in range(3)]
    assert all(e.args["enable_lora"] and e.args["max_lora_rank"] == 8 and e.args["gpu_memory_utilization"] == 0.5
               for e in record["engines"])
    assert stage2["engine"].args["max_loras"] == 3 and held_out["engine"].args["max_loras"] == 3
    assert all(e.shut_down for e in record["engines"])  # the GPU is free for what runs next

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run / "models" / "pref_00" / "stage2")
    test_prompts = pd.read_parquet(run / "inputs" / "test_prompts.parquet")["prompt"].tolist()
    for i in range(3):
        rows = pd.read_json(run / "generations" / f"pref_{i:02d}.jsonl", lines=True)
        assert rows["prompt"].tolist() == test_prompts
        mine = [o for o, r in zip(held_out["outputs"], held_out["loras"])
                if r is not None and r.lora_path.endswith(f"pref_{i:02d}/stage2")]
        assert rows["response"].tolist() == [decoded(tokenizer, o) for o in mine]
        meta = json.loads((run / "generations" / f"pref_{i:02d}.meta.json").read_text())
        assert meta["backend"] == "vllm" and meta["sampling"]["seed"] == 2000
        assert meta["tokens_generated"] == sum(len(o.outputs[0].token_ids) for o in mine)
        stopped_by_length = [o.outputs[0].finish_reason == "length" for o in mine]
        assert rows["truncated"].tolist() == [length and not cut_at_turn(tokenizer.decode(
            o.outputs[0].token_ids, skip_special_tokens=True))[1] for o, length in zip(mine, stopped_by_length)]
        assert meta["vllm"]["sampling_params"]["max_tokens"] == 8 and meta["vllm"]["sampling_params"]["top_p"] == 0.9


def test_resumed_vllm_generation_is_identical(paretohqd_vllm_run):
    """A file regenerated alone (a smaller group than the first time) has the same text: per-prompt seeds."""
    run, config_path, _ = paretohqd_vllm_run
    before = {name: (run / "generations" / name).read_bytes() for name in ("pref_01.jsonl", "base.jsonl")}
    for name in before:
        (run / "generations" / name).unlink()
    with fake_vllm_installed() as vllm:
        assert main(["run", str(config_path)]) == 0
        [call] = vllm.RECORD["generate"]
    assert len(call["prompt_token_ids"]) == 6
    assert {name: (run / "generations" / name).read_bytes() for name in before} == before


def test_soups_run_serves_each_preference_as_one_combined_adapter(tiny_policy, tmp_path):
    from peft import PeftModel

    from paretohqd.policy import load_causal_lm
    from paretohqd.policy.adapters import combine

    config_path = vllm_config(tmp_path, tiny_policy, method="soups")
    raw = yaml.safe_load(config_path.read_text())
    raw["train"]["lora"]["r"] = 6  # two ingredients: a rank-12 combination, served with max_lora_rank 16
    raw["train"]["sft"]["max_steps"] = 2
    config_path.write_text(yaml.safe_dump(raw))
    with fake_vllm_installed() as vllm:
        assert main(["run", str(config_path)]) == 0
        [call] = vllm.RECORD["generate"]
        [engine] = vllm.RECORD["engines"]
    run = tmp_path / "run"
    combined = sorted({r.lora_path for r in call["loras"] if r})
    assert combined == [str(run / "generations" / f".pref_{i:02d}.combined") for i in range(3)]
    assert (engine.args["max_loras"], engine.args["max_lora_rank"]) == (3, 16)
    assert not any(Path(path).exists() for path in combined)  # written for the call, then removed
    meta = json.loads((run / "generations" / "pref_01.meta.json").read_text())
    assert meta["vllm"]["combined_from"]["mix"] == [0.5, 0.5]
    assert json.loads((run / "eval" / "metrics.json").read_text())["method"] == "Rewarded Soups"

    # The written adapter is the HF backend's combination exactly (peft 'cat': W0 + sum_i w_i B_i A_i).
    import torch

    model_config = load_config(config_path).model
    ingredients = [run / "models" / f"objective_{j:02d}" / "stage1" for j in range(2)]
    folder = tmp_path / "soup"
    [served] = prepare_models([(ingredients, [0.25, 0.75], folder)], model_config)
    assert served.adapter == str(folder) and vllm_backend.adapter_rank(folder) == 12
    ours = PeftModel.from_pretrained(load_causal_lm(str(tiny_policy))[0], str(folder)).merge_and_unload().state_dict()
    reference = combine(ingredients, [0.25, 0.75], model_config)[0].state_dict()
    assert all(torch.allclose(ours[key], value, atol=1e-6) for key, value in reference.items())
    shutil.rmtree(folder)
