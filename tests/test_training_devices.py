"""A training process uses one device: the global batch is what the plan says, whatever the machine has."""

import torch

from paretohqd.config import ModelConfig
from paretohqd.tracking import Tracking
from paretohqd.train.common import trainer_arguments


def test_a_local_run_trains_on_one_device_even_where_several_gpus_are_visible(tmp_path):
    from trl import SFTConfig

    class FourVisibleGPUs(SFTConfig):
        """What transformers makes of a process that sees 4 GPUs outside a launch (no GPU here to show it)."""

        def __post_init__(self):
            super().__post_init__()
            self.__dict__["_setup_devices"] = torch.device("cpu")  # cached_property: the device is set up
            self._n_gpu = 4

    probe = FourVisibleGPUs(output_dir=str(tmp_path / "probe"), per_device_train_batch_size=2, use_cpu=True)
    assert probe.n_gpu == 4 and probe.train_batch_size == 8  # what nn.DataParallel would train on
    args = trainer_arguments(FourVisibleGPUs, {"per_device_train_batch_size": 2, "max_steps": 1}, tmp_path, 0,
                             Tracking(),
                             ModelConfig(device="cpu"), progress=False)
    assert args.n_gpu == 1 and args.train_batch_size == 2  # no nn.DataParallel: the plan's global batch


# ------------------------------------------------------------------------------------------ checkpoints in a unit

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from .conftest import torch_threads  # noqa: E402


class Killed(Exception):
    """What a kill -9 would leave: an attempt that stopped after a step, its checkpoints on disk."""


def stop_at(step: int):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise Killed(step)

    return StopAt()


def train(kind, data, output, model_config, identity, monkeypatch=None, stop=None):
    from paretohqd.train import common
    from paretohqd.train.dpo import train_dpo
    from paretohqd.train.sft import train_model

    if stop is not None:
        real = common.finite_guard
        monkeypatch.setattr(common, "finite_guard", lambda label: [real(label), stop_at(stop)][1])
    settings = {"max_steps": 5, "per_device_train_batch_size": 2, "learning_rate": 5e-3, "save_strategy": "steps",
                "save_steps": 2, "save_total_limit": 1, "logging_steps": 1, "max_length": 64, "bf16": False,
                "lr_scheduler_type": "linear"}
    lora = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": "all-linear"}  # dropout draws numbers
    common_args = dict(log=lambda *_: None, progress=False, checkpoint_identity=identity)
    with torch_threads(1):
        if kind == "sft":
            return train_model(data, output, model_config, settings, lora, 3, **common_args)
        return train_dpo(data, output, model_config, {**settings, "beta": 0.1}, lora, 3, **common_args)


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_a_training_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(kind, tiny_policy, tmp_path,
                                                                                   monkeypatch):
    from paretohqd.config import ModelConfig
    from paretohqd.train.common import checkpoint_folder

    model_config = ModelConfig(name_or_path=str(tiny_policy), device="cpu")
    prompts = [f"\n\nHuman: question {i}?\n\nAssistant:" for i in range(10)]
    if kind == "sft":
        data = pd.DataFrame({"prompt": prompts, "response": [f"answer number {i}" for i in range(10)]})
    else:
        data = pd.DataFrame({"prompt": prompts, "chosen": [f"good {i}" for i in range(10)],
                             "rejected": [f"bad bad {i}" for i in range(10)]})
    whole = tmp_path / "whole" / "model"
    train(kind, data, whole, model_config, "unit-key")
    resumed = tmp_path / "resumed" / "model"
    with pytest.raises(Killed):
        train(kind, data, resumed, model_config, "unit-key", monkeypatch, stop=3)
    monkeypatch.undo()
    assert (checkpoint_folder(resumed) / "checkpoint-2").is_dir() and not resumed.exists()
    half_written = checkpoint_folder(resumed) / "checkpoint-4"  # killed while saving: no trainer_state.json yet
    half_written.mkdir()
    (half_written / "adapter_model.safetensors").write_bytes(b"cut short")
    stats = train(kind, data, resumed, model_config, "unit-key")
    assert stats["resumed_from"] == "checkpoint-2" and not checkpoint_folder(resumed).exists()
    first, second = (load_file(folder / "adapter_model.safetensors") for folder in (whole, resumed))
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)  # bitwise

    # Another unit's (or changed settings') checkpoints are never resumed from.
    with pytest.raises(Killed):
        train(kind, data, tmp_path / "other" / "model", model_config, "old-key", monkeypatch, stop=3)
    monkeypatch.undo()
    assert train(kind, data, tmp_path / "other" / "model", model_config, "new-key")["resumed_from"] is None


def test_a_model_for_an_accelerator_is_loaded_straight_onto_it(tiny_policy, monkeypatch):
    """No GPU here: what reaches from_pretrained is checked. Before, every unit read the weights into host memory,
    merged LoRA there, then moved the model (a 7B model: 13.5 GB of RAM and 20-60 s a unit)."""
    from paretohqd.config import ModelConfig
    from paretohqd.policy import policy as policy_module
    from paretohqd.policy.load import load_causal_lm

    asked = []

    def loading(name, dtype="float32", revision=None, device_map=None):
        asked.append(device_map)
        return load_causal_lm(name, dtype, revision)  # on the CPU: there is no cuda:1 here

    monkeypatch.setattr(policy_module, "load_causal_lm", loading)
    monkeypatch.setattr(policy_module, "resolve_device", lambda device: device)
    policy_module.load_policy(ModelConfig(name_or_path=str(tiny_policy)), device="cuda:1")
    policy_module.load_policy(ModelConfig(name_or_path=str(tiny_policy)), device="cpu")
    policy_module.load_policy(ModelConfig(name_or_path=str(tiny_policy), device_map="auto"), device="cuda:1")
    assert asked == [{"": "cuda:1"}, None, "auto"]  # the user's device_map stays theirs


def test_a_training_unit_on_one_accelerator_loads_its_model_straight_onto_it(tiny_policy, tmp_path, monkeypatch):
    """The trainer's own device decides (no GPU here: the arguments say cuda:1); a launch over several processes
    (ZeRO-3 shards while loading) and the CPU keep the config's placement."""
    from types import SimpleNamespace

    from trl import SFTConfig

    from paretohqd.config import ModelConfig
    from paretohqd.train import common

    loaded = []
    monkeypatch.setattr(common, "load_trainable",
                        lambda model_config, *rest: loaded.append(model_config.device_map) or (None,) * 4)
    real_arguments = common.trainer_arguments
    for device, world_size in (("cuda:1", 1), ("cuda:0", 2), ("cpu", 1)):
        def arguments(*given, device=device, world_size=world_size):
            args = real_arguments(*given)
            return SimpleNamespace(device=torch.device(device), world_size=world_size, process_index=0,
                                   main_process_first=args.main_process_first)

        monkeypatch.setattr(common, "trainer_arguments", arguments)
        common.start_run(SFTConfig, {"max_steps": 1}, tmp_path / device / "model", 0, Tracking(),
                         ModelConfig(name_or_path=str(tiny_policy), device="cpu"), None, None, progress=False)
    assert loaded == [{"": "cuda:1"}, None, None]


def test_activation_checkpointing_is_on_by_default_above_a_billion_parameters(tiny_policy, tmp_path):
    from transformers import LlamaConfig

    from paretohqd.config import load_config
    from paretohqd.methods import get_method
    from paretohqd.pipeline import build_plan
    from paretohqd.policy.load import needs_activation_checkpointing, parameter_estimate

    llama7b = tmp_path / "llama-2-7b-shaped"
    LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, vocab_size=32000).save_pretrained(
        llama7b)
    (llama7b / "model.safetensors").write_bytes(b"")  # the config is all the estimate reads
    (llama7b / "tokenizer_config.json").write_text("{}")
    assert 6.5e9 < parameter_estimate(str(llama7b)) < 6.8e9  # Llama-2-7B has 6.74e9
    assert needs_activation_checkpointing(str(llama7b)) and not needs_activation_checkpointing(str(tiny_policy))
    assert not needs_activation_checkpointing(str(tmp_path / "no-such-model"))  # its own check will say why

    from .test_pipeline import write_run_config

    def stage1_setting(*overrides):
        config = load_config(write_run_config(tmp_path, tiny_policy), list(overrides))
        units = {u.name: u for u in build_plan(get_method("paretohqd"), config).units}
        return units["train/stage1/pref_00"].settings["sft"]["activation_checkpointing"]

    assert stage1_setting() is False  # decided when planned: the key says what training does
    assert stage1_setting("--model.name_or_path", str(llama7b)) is True
    assert stage1_setting("--model.name_or_path", str(llama7b), "--train.sft.activation_checkpointing", "false") \
        is False  # the user's word
