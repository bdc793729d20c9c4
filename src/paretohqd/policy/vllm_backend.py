"""The vLLM generation backend: one engine per base model answers the prompts of several models in one batched
call, each prompt with the LoRA adapter of the model it belongs to.

Inputs and outputs follow the Hugging Face backend exactly: prompts go through the same ``Policy`` chat template and
``max_prompt_length`` left cut and reach the engine as token ids (so truncation cannot differ), generation stops at
the policy's end-of-turn ids, and the new token ids are decoded by the policy's tokenizer and cut by
``clean_response``. Each prompt carries its own seed, derived from its unit's seed and its index, so a unit draws the
same text whichever other prompts share the engine with it (a resumed group is smaller than the first one).

A weighted combination of trained models (Rewarded Soups) is written out first: LoRA ingredients as one adapter made
by peft's exact ``cat`` combination (the one ``adapters.combine`` merges for the HF backend; its rank is the sum of
theirs), full fine-tunes as a folder of averaged weights that becomes an engine's model itself.

Interface of vLLM 0.33.0, checked in its wheel: ``vllm.LLM(model, *, tokenizer, dtype, revision, seed, **kwargs)``
with ``enable_lora``, ``max_loras``, ``max_lora_rank`` passed through to ``EngineArgs`` (entrypoints/llm.py,
engine/arg_utils.py); ``max_lora_rank`` one of ``MaxLoRARanks`` (config/lora.py); ``LLM.generate(prompts,
sampling_params, *, use_tqdm, lora_request)`` with one ``SamplingParams`` and one ``LoRARequest | None`` per prompt
(entrypoints/common/offline.py ``_params_to_seq``/``_lora_request_to_seq``), outputs in prompt order;
``TokensPrompt(prompt_token_ids=...)`` (inputs/llm.py); ``LoRARequest(lora_name, lora_int_id, lora_path)``
(lora/request.py); ``SamplingParams`` top_k 0 (or -1) is "off", temperature 0 is greedy and must lie in [0, 2]
(sampling_params.py); the engine is shut down by ``llm.llm_engine.engine_core.shutdown()`` (v1/engine).
"""

from __future__ import annotations

import gc
import importlib.util
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import io
from ..errors import UserError
from .adapters import combine, is_adapter, load_ingredients
from .generation import cut_at_turn
from .load import resolve_model_path
from .policy import Policy

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``max_lora_rank`` values vLLM 0.33 accepts (vllm/config/lora.py ``MaxLoRARanks``)."""
VLLM_MAX_TEMPERATURE = 2.0
"""vllm.SamplingParams rejects temperatures above 2 (sampling_params.py ``_verify_args``)."""
PROMPT_SEED_STRIDE = 1_000_003
"""Per-prompt seed = unit seed * stride + prompt index: distinct for every prompt of every unit seed."""
ENGINE_SEED = 0
"""Every request carries its own seed, so the engine's seed (for requests without one) never decides a result and
one engine serves units of any seed."""
COMBINED_ADAPTER = "combined"
NOT_INSTALLED = "generation.backend is 'vllm' but vLLM is not installed: pip install 'paretohqd[vllm]'"


@dataclass(frozen=True)
class ServedModel:
    """How the engine serves one model: the engine's own model (the base, or a full fine-tune), a LoRA adapter
    folder on top of it (None: the engine's model as it is), and the folder whose tokenizer formats its prompts."""

    engine_model: str
    adapter: str | None
    tokenizer: str
    revision: str | None = None
    """Hub revision of ``engine_model`` (and of ``tokenizer`` when it is the same)."""


@dataclass
class ModelPrompts:
    """One model's share of a batched call: the prompts as the model sees them, how it samples, its unit seed."""

    model: ServedModel
    prompts: list[str]
    sampling: Any
    """A ``SamplingConfig``."""
    seed: int


@dataclass
class Answers:
    responses: list[str]
    record: dict
    truncated: list[bool] = field(default_factory=list)
    """Per response: vLLM stopped it at ``max_tokens`` (finish reason ``length``) before any turn marker."""
    tokens: list[int] = field(default_factory=list)
    """Per response: the new tokens it took."""
    """What the engine did, for the generation file's sidecar: the SamplingParams mapping and the engine args."""


# ---------------------------------------------------------------------------------------------------------------
# What the engine serves


def check_vllm_available() -> None:
    """Before any work: a run that would train for hours must not fail at its first vLLM generation."""
    if importlib.util.find_spec("vllm") is None:
        raise UserError(NOT_INSTALLED)


def prepare_models(members: Sequence[tuple[Sequence[Path], Sequence[float] | None, Path]],
                   model_config) -> list[ServedModel]:
    """For each (trained model folders, mix weights or None, folder for a combination): what the engine serves.

    Mirrors ``load_policy``: no folders is the base model; one folder without ``mix`` is that adapter (on the base)
    or that full fine-tune; otherwise the ``mix``-weighted combination, written into its folder now."""
    base = resolve_model_path(model_config.name_or_path)
    revision = model_config.revision if base == model_config.name_or_path and not Path(base).is_dir() else None
    served: list[ServedModel] = []
    lora_combinations: list[tuple[list[str], list[float], Path]] = []
    for given, mix, combination in members:
        folders = [str(folder) for folder in given]
        if not folders:
            served.append(ServedModel(base, None, base, revision))
        elif mix is None and len(folders) == 1:
            only = folders[0]
            served.append(ServedModel(base, only, only, revision) if is_adapter(only)
                          else ServedModel(only, None, only))
        elif len(folders) != len(mix or ()):
            raise ValueError(f"{len(folders)} models but {len(mix or ())} weights to combine them")
        elif is_adapter(folders[0]):
            lora_combinations.append((folders, [float(w) for w in mix], Path(combination)))
            served.append(ServedModel(base, str(combination), folders[0], revision))
        else:
            merged, tokenizer = combine(folders, list(mix), model_config)
            with io.replaced_folder(Path(combination)) as staging:
                merged.save_pretrained(staging)
                tokenizer.save_pretrained(staging)
            served.append(ServedModel(str(combination), None, str(combination)))
    _write_lora_combinations(lora_combinations, model_config)
    return served


def _write_lora_combinations(combinations: list[tuple[list[str], list[float], Path]], model_config) -> None:
    """Each combination as one adapter: peft's ``cat`` combination (W0 + sum_i w_i B_i A_i, exact), as
    ``adapters.combine`` builds it. The base and ingredients load once for every combination of the same ones
    (Rewarded Soups: every preference mixes the same M models)."""
    if not combinations:
        return
    by_ingredients: dict[tuple[str, ...], list[tuple[list[float], Path]]] = {}
    for folders, weights, target in combinations:
        by_ingredients.setdefault(tuple(folders), []).append((weights, target))
    for folders, mixes in by_ingredients.items():
        model, names = load_ingredients(folders, model_config)
        for weights, target in mixes:
            model.add_weighted_adapter(names, weights, adapter_name=COMBINED_ADAPTER, combination_type="cat")
            with io.replaced_folder(target) as staging:
                model.save_pretrained(str(staging), selected_adapters=[COMBINED_ADAPTER])
                # peft writes an adapter not named "default" into a subfolder of that name
                for item in (staging / COMBINED_ADAPTER).iterdir():
                    os.replace(item, staging / item.name)
                (staging / COMBINED_ADAPTER).rmdir()
            model.delete_adapter(COMBINED_ADAPTER)


def adapter_rank(folder: str | Path) -> int:
    """The largest LoRA rank of an adapter (``r``, or a larger ``rank_pattern`` entry), as vLLM checks it; an
    adapter vLLM cannot serve is refused here, before the engine starts (lora/peft_helper.py's checks)."""
    config = io.read_json(Path(folder) / "adapter_config.json")
    if config.get("use_dora"):
        raise UserError(f"{folder} is a DoRA adapter (train.lora.use_dora), which vLLM does not serve; use "
                        "generation.backend 'hf'")
    if config.get("modules_to_save"):
        raise UserError(f"{folder} trains whole modules too (train.lora.modules_to_save), which vLLM does not serve; "
                        "use generation.backend 'hf'")
    return max([int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())])


def vllm_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise UserError(f"LoRA rank {rank} is above {VLLM_LORA_RANKS[-1]}, the largest max_lora_rank vLLM accepts; lower "
                    "train.lora.r (a Rewarded Soups combination has the sum of its ingredients' ranks)")


# ---------------------------------------------------------------------------------------------------------------
# Sampling


def sampling_params_kwargs(sampling, stop_token_ids: Sequence[int]) -> dict:
    """``SamplingConfig`` -> ``vllm.SamplingParams`` arguments (all but the per-prompt seed), one to one with HF
    generate: max_new_tokens -> max_tokens; do_sample false -> temperature 0, vLLM's greedy; top_k 0 means "off"
    in both. Token ids come back undecoded: the policy's tokenizer decodes them as in HF generation."""
    kwargs: dict[str, Any] = {"max_tokens": sampling.max_new_tokens, "stop_token_ids": list(stop_token_ids),
                              "detokenize": False}
    if sampling.do_sample:
        kwargs.update(temperature=float(sampling.temperature), top_p=float(sampling.top_p), top_k=int(sampling.top_k))
    else:
        kwargs.update(temperature=0.0, top_p=1.0, top_k=0)
    return kwargs


def check_vllm_sampling(sampling, where: str) -> None:
    if sampling.do_sample and sampling.temperature > VLLM_MAX_TEMPERATURE:
        raise UserError(f"{where}: temperature {sampling.temperature:g} is above {VLLM_MAX_TEMPERATURE:g}, the most "
                        "vLLM samples at (generation.backend 'vllm')")


def prompt_seed(seed: int, index: int) -> int:
    return seed * PROMPT_SEED_STRIDE + index


# ---------------------------------------------------------------------------------------------------------------
# The engine


@dataclass
class _Engine:
    key: str
    """Digest of the engine's model and its arguments other than LoRA capacity."""
    llm: Any
    args: dict
    """Every argument it was built with (recorded beside each generation file)."""
    adapter_ids: dict[str, int] = field(default_factory=dict)
    """Adapter content fingerprint -> the int id vLLM caches it under (ids are never reused for other weights)."""


_engine: _Engine | None = None
"""One engine at a time: each claims ``gpu_memory_utilization`` of the GPU, so a second one would not fit."""


def release_engine() -> None:
    """Shut the cached engine down and give its GPU memory back (to training, or to the next engine)."""
    global _engine
    if _engine is None:
        return
    engine, _engine = _engine, None
    core = getattr(getattr(engine.llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    del engine
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


MAX_MEMORY_SHARE = 0.9
"""vLLM's own default share of the GPU, the most an engine is given here."""
MEMORY_HEADROOM = 0.05
"""Share of the GPU left free below what the process does not hold: CUDA graphs, the sampler, fragmentation."""


def memory_budget(user_args: Mapping) -> dict:
    """``gpu_memory_utilization`` for a new engine when ``generation.vllm`` does not give it: vLLM refuses to start
    when that share of the whole GPU exceeds its free memory, and this process may still hold some (a model it
    trained, reward models it scored with). The caches are emptied first; then the free share less
    ``MEMORY_HEADROOM``, at most vLLM's default 0.9, in hundredths."""
    if "gpu_memory_utilization" in user_args:
        return {}
    import torch

    if not torch.cuda.is_available():
        return {}
    gc.collect()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    share = min(MAX_MEMORY_SHARE, math.floor((free / total - MEMORY_HEADROOM) * 100) / 100)
    if share < 0.05:
        raise UserError(f"vLLM cannot start: {free / 2**30:.1f} GiB of the GPU's {total / 2**30:.1f} GiB are free "
                        "after this process released what it could; give the engine another GPU "
                        "(execution.resources) or set generation.vllm.gpu_memory_utilization")
    return {"gpu_memory_utilization": share}


def _engine_for(llm_class, model: ServedModel, model_config, user_args: Mapping, adapters: int, rank: int) -> _Engine:
    """The cached engine when it serves ``model`` with room for ``adapters`` adapters of ``rank``; else a new one
    (capacity only grows, so calls that alternate between needs do not rebuild each time)."""
    global _engine
    settings = {"model": model.engine_model, "dtype": model_config.dtype, "seed": ENGINE_SEED,
                **({"revision": model.revision} if model.revision else {}), **user_args}
    key = io.digest(settings)
    wanted: dict[str, Any] = {}
    if adapters:
        # Settings the user gave in generation.vllm win (max_loras below the adapter count trades speed for memory).
        wanted = {"enable_lora": True, "max_loras": adapters, "max_lora_rank": vllm_lora_rank(rank)}
        wanted = {name: user_args.get(name, value) for name, value in wanted.items()}
    current = _engine
    if current is not None and current.key == key:
        if all(current.args.get(name, 0) >= value for name, value in wanted.items()):
            return current
        if current.args.get("enable_lora"):
            wanted = {name: max(value, current.args[name]) for name, value in wanted.items()}
    release_engine()
    args = {**settings, **wanted, **memory_budget(user_args)}
    engine_model = args.pop("model")
    _engine = _Engine(key, llm_class(engine_model, **args), {"model": engine_model, **args})
    return _engine


def _adapter_request(lora_request_class, engine: _Engine, folder: str):
    """One LoRARequest per adapter, named by its content so that equal weights share one id and rewritten weights
    at the same path get a new one (vLLM caches loaded adapters by id)."""
    fingerprint = io.content_fingerprint(folder)
    if fingerprint not in engine.adapter_ids:
        engine.adapter_ids[fingerprint] = len(engine.adapter_ids) + 1  # vLLM ids start at 1
    return lora_request_class(f"adapter-{fingerprint[:16]}", engine.adapter_ids[fingerprint], str(folder))


def import_vllm():
    """(LLM, SamplingParams, TokensPrompt, LoRARequest), imported only when the vLLM backend runs."""
    check_vllm_available()
    try:
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest
    except ImportError as exc:
        raise UserError(f"generation.backend is 'vllm' but vLLM fails to import ({exc})") from None
    return LLM, SamplingParams, TokensPrompt, LoRARequest


def generate_with_vllm(requests: Sequence[ModelPrompts], model_config, engine_args: Mapping | None = None,
                       progress: bool = False) -> list[Answers]:
    """One response per prompt for every request, in request and prompt order. Requests on one engine model (the
    base with any adapters, or one full fine-tune) share one ``generate`` call."""
    llm_class, sampling_params_class, tokens_prompt, lora_request_class = import_vllm()
    user_args = dict(engine_args or {})
    tokenizers: dict[tuple[str, str | None], Any] = {}
    answers: list[Answers | None] = [None] * len(requests)
    by_engine_model: dict[tuple[str, str | None], list[int]] = {}
    for index, request in enumerate(requests):
        by_engine_model.setdefault((request.model.engine_model, request.model.revision), []).append(index)
    for members in by_engine_model.values():
        served = requests[members[0]].model
        folders = list(dict.fromkeys(requests[i].model.adapter for i in members if requests[i].model.adapter))
        engine = _engine_for(llm_class, served, model_config, user_args, len(folders),
                             max((adapter_rank(f) for f in folders), default=0))
        adapter_requests = {f: _adapter_request(lora_request_class, engine, f) for f in folders}
        prompts, params, loras, policies, records = [], [], [], [], []
        for i in members:
            request = requests[i]
            policy = _policy(request.model, model_config, tokenizers)
            texts = [policy.chat_text(p) for p in request.prompts]
            ids = policy.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
            kwargs = sampling_params_kwargs(request.sampling, policy.end_of_turn_ids)
            prompts += [tokens_prompt(prompt_token_ids=list(row)) for row in ids]
            params += [sampling_params_class(**kwargs, seed=prompt_seed(request.seed, j)) for j in range(len(ids))]
            loras += [adapter_requests.get(request.model.adapter)] * len(ids)
            policies.append(policy)
            records.append({"sampling_params": {**kwargs, "seed": f"{request.seed} * {PROMPT_SEED_STRIDE} + prompt "
                                                                  "index"},
                            "engine": dict(engine.args), "adapter": request.model.adapter,
                            "lora_int_id": adapter_requests[request.model.adapter].lora_int_id
                            if request.model.adapter else None})
        outputs = engine.llm.generate(prompts, params, use_tqdm=progress,
                                      lora_request=loras if folders else None) if prompts else []
        start = 0
        for i, policy, record in zip(members, policies, records):
            count = len(requests[i].prompts)
            finished = outputs[start:start + count]
            new_tokens = [list(out.outputs[0].token_ids) for out in finished]
            start += count
            decoded = policy.tokenizer.batch_decode(new_tokens, skip_special_tokens=True) if new_tokens else []
            cut = [cut_at_turn(text) for text in decoded]
            answers[i] = Answers([text for text, _ in cut], record,
                                 [out.outputs[0].finish_reason == "length" and not marker
                                  for out, (_, marker) in zip(finished, cut)], [len(ids) for ids in new_tokens])
    return answers  # type: ignore[return-value]


def _policy(model: ServedModel, model_config, cache: dict) -> Policy:
    """A tokenizer-only policy: its chat template, truncation and end-of-turn ids are those of HF generation."""
    from transformers import AutoTokenizer

    revision = model.revision if model.tokenizer == model.engine_model else None
    key = (model.tokenizer, revision)
    if key not in cache:
        cache[key] = AutoTokenizer.from_pretrained(model.tokenizer, **({"revision": revision} if revision else {}))
    return Policy(None, cache[key], model_config.system_prompt, model_config.max_prompt_length)
