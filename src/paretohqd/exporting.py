"""Any preference of a finished run as a standard Hugging Face model folder, which ``transformers`` and ``peft`` load
as they are (no paretohqd needed to use it):

    paretohqd export runs/demo --weights 0.3,0.7 --output exported/w03 [--merge] [--mode interpolate]
    paretohqd.export("runs/demo", [0.3, 0.7], "exported/w03", merge=True)

The folder holds exactly what ``paretohqd.load_policy(run, weights, mode)`` serves:

- a LoRA run, by default: one peft adapter whose ``base_model_name_or_path`` is the real base (the Hub id, with its
  revision when pinned; the absolute path of a local folder; for the embedded default the safetensors folder it
  was converted into). A mix (an interpolated preference, a Rewarded Soup) is saved as the single adapter peft's
  exact "cat" combination makes (its rank the sum of the ingredients'), so ``PeftModel.from_pretrained(base, DIR)``
  is the served model;
- ``merge=True``, and always for full fine-tunes: the merged full weights (safetensors and config.json);
- always: the tokenizer with its chat template; a generation config whose eos is the end-of-turn list (plain
  ``generate`` stops where the assistant's turn ends); a model card (README.md) whose front matter the Hub
  parses, with the preference, what serves it, its training data and the run's evaluation; and ``paretohqd.json``:
  what was exported (method, weights, mode, what it is made from, objectives) and, for RiC, the reward tokens
  every prompt must carry.

The folder is built beside DIR and renamed onto it once complete: an export killed halfway leaves no half model
in DIR (and the next export removes the abandoned staging folder).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import io
from .errors import UserError
from .locking import output_lock_file, writer_lock
from .methods import get_method
from .model_files import is_local_path
from .pareto import preference_direction
from .pipeline.rundir import inside_run_directory, read_metrics
from .pipeline.serve import ServedModel, run_config, served_model
from .policy import Policy, end_of_turn_ids, load_policy
from .policy.adapters import is_adapter, load_ingredients
from .policy.load import EMBEDDED_DEFAULT
from .tables import format_vector
from .train.cards import base_model_origin, card_base_model, front_matter

EXPORT_FILE = "paretohqd.json"
EXPORT_FORMAT_VERSION = 1
CARD_FILE = "README.md"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
COMBINED_ADAPTER = "combined"
EXAMPLE_PROMPT = "\n\nHuman: hi\n\nAssistant:"
METHOD_TAGS = {"ric": "rewards-in-context", "soups": "rewarded-soups", "sft": "sft-baseline"}
FOLDER_PLACEHOLDER = "path/to/this/folder"


@dataclass
class BaseModelReference:
    """The base a LoRA export sits on, named so that any loader finds it."""

    name_or_path: str
    revision: str | None
    source: str
    """``hub``, ``local`` or ``embedded``."""
    origin: str | None = None
    """What a local or embedded base derives from, when paretohqd knows it."""

    def describe(self) -> dict:
        return {"name_or_path": self.name_or_path, "revision": self.revision, "source": self.source,
                "derived_from": self.origin}


def export_model(run_dir: str | Path, weights: Sequence[float], output: str | Path, merge: bool = False,
                 mode: str | None = None, overwrite: bool = False, wait: bool = False) -> Path:
    """Write the model a finished run serves for ``weights`` into the folder ``output`` (see the module
    docstring); returns its path. ``merge``: full merged weights instead of a LoRA adapter; ``mode``: as in
    :func:`paretohqd.load_policy`; ``overwrite``: replace an existing non-empty ``output``. One export writes
    ``output`` at a time: another is refused naming it, or with ``wait`` waited for."""
    folder = Path(output).expanduser()
    inside = inside_run_directory(folder)
    if inside is not None and inside.resolve() != folder.resolve():  # before the lock, whose file is written beside
        # the output (a run directory itself is refused below, as the run it would replace)
        raise UserError(f"export folder '{output}' lies inside the run directory '{inside}', whose files are the "
                        "run's own: choose a folder outside it")
    with writer_lock(output_lock_file(folder), f"export folder '{output}'", wait=wait):
        return _export_model(Path(run_dir), weights, output, merge, mode, overwrite)


def _export_model(run_dir: Path, weights: Sequence[float], output: str | Path, merge: bool, mode: str | None,
                  overwrite: bool) -> Path:
    config = run_config(run_dir)
    method = get_method(config.method)
    served = served_model(method, config, weights, mode)
    if not served.model_folders:
        raise UserError(f"run '{run_dir}' serves its base model itself for this preference: there is no trained "
                        "model to export")
    base = base_reference(config.model)
    target = check_output(output, run_dir, served, base, overwrite)
    kind = "adapter" if is_adapter(served.model_folders[0]) and not merge else (
        "merged" if is_adapter(served.model_folders[0]) else "full")
    if kind == "adapter" and base.source == "local" and not Path(base.name_or_path).is_dir():
        raise UserError(f"the run's base model folder '{config.model.name_or_path}' no longer exists: the adapter "
                        "would name a base no one can load (restore it, or export with --merge)")
    remove_abandoned_staging(target)
    with io.replaced_folder(target) as staging:
        write_weights(staging, served, kind, base)
        tokenizer = write_tokenizer_and_generation_config(staging, served)
        record = export_record(run_dir, served, method.name, kind, base, tokenizer)
        io.write_json(staging / EXPORT_FILE, record)
        write_card(staging / CARD_FILE, run_dir, served, record)
        share_files(staging)
    return target


# ---------------------------------------------------------------------------------------------------- checks


def _version() -> str:
    """The installed package's version (its metadata: the package root is a layer above this module)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("paretohqd")
    except PackageNotFoundError:
        return "unknown"


def base_reference(model_config) -> BaseModelReference:
    """How the export names the run's base model (``model.name_or_path``, ``model.revision``)."""
    name = model_config.name_or_path
    if name == EMBEDDED_DEFAULT:
        return BaseModelReference(card_base_model(name), None, "embedded", base_model_origin(name))
    if is_local_path(name):
        return BaseModelReference(str(Path(name).expanduser().resolve()), None, "local")
    return BaseModelReference(name, model_config.revision, "hub")


def check_output(output: str | Path, run_dir: Path, served: ServedModel, base: BaseModelReference,
                 overwrite: bool) -> Path:
    """The export folder as an absolute path: one sentence when it is a file, is not empty (unless
    ``overwrite``), or would replace the run, the models it is made from or a local base model."""
    target = Path(output).expanduser().resolve()
    run = Path(run_dir).resolve()
    if target == run or run.is_relative_to(target) or target.is_relative_to(run / "models"):
        raise UserError(f"export folder '{output}' would replace the run '{run_dir}' or write among its trained "
                        "models: choose a folder outside them")
    read = [Path(folder).resolve() for folder in served.model_folders]
    if base.source != "hub":  # a file added to a local base would change its content, and so the run's keys
        read.append(Path(base.name_or_path).resolve())
    for folder in read:
        if folder.is_relative_to(target) or target.is_relative_to(folder):
            raise UserError(f"export folder '{output}' would replace or write into '{folder}', which the export "
                            "reads: choose a folder outside it")
    if target.exists() and not target.is_dir():
        raise UserError(f"export folder '{output}' is a file: give a folder to export into")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise UserError(f"export folder '{output}' exists and is not empty: choose a new folder, or pass "
                        "--overwrite (overwrite=True) to replace it")
    return target


def remove_abandoned_staging(target: Path) -> None:
    """Remove the staging folders (``DIR.partial<pid>``) of exports into ``target`` that were killed outright;
    one whose process still runs is another export's, and stays."""
    for staging in target.parent.glob(f"{glob.escape(target.name)}.partial*"):
        pid = staging.name.rsplit(".partial", 1)[1]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process starts its export only now: what it finds is from an earlier life of the pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def share_files(folder: Path) -> None:
    """The usual permissions of new files for everything exported (safetensors writes its files owner-only): the
    folder is made to be shared."""
    for file in folder.iterdir():
        if file.is_file():
            io.give_usual_permissions(file)


# --------------------------------------------------------------------------------------------------- weights


def write_weights(staging: Path, served: ServedModel, kind: str, base: BaseModelReference) -> None:
    """The adapter (one trained adapter as it is, or the exact combination of several) or the full weights."""
    model_config = served.config.model
    if kind != "adapter":
        policy = load_policy(model_config, served.model_folders, served.mix, device="cpu")
        policy.model.save_pretrained(str(staging))
        return
    shares = served.mix if served.mix is not None else [1.0]
    # An ingredient with no share adds nothing to the combination, only rank: leave it out.
    ingredients = [(folder, share) for folder, share in zip(served.model_folders, shares) if share > 0]
    if len(ingredients) == 1 and np.isclose(ingredients[0][1], 1.0, rtol=0, atol=1e-12):
        for name in ADAPTER_FILES:
            shutil.copyfile(ingredients[0][0] / name, staging / name)
    else:
        save_combined_adapter(staging, [folder for folder, _ in ingredients], [share for _, share in ingredients],
                              model_config)
    point_adapter_at_base(staging / "adapter_config.json", base)


def save_combined_adapter(staging: Path, folders: list[Path], shares: list[float], model_config) -> None:
    """peft's exact "cat" combination of the adapters in ``folders`` (what serving merges), saved as one adapter
    in ``staging``."""
    model, names = load_ingredients(folders, model_config)
    model.add_weighted_adapter(names, [float(share) for share in shares], adapter_name=COMBINED_ADAPTER,
                               combination_type="cat")
    scratch = staging / ".peft"
    model.save_pretrained(str(scratch), selected_adapters=[COMBINED_ADAPTER])
    # peft writes an adapter not named "default" into a subfolder of its name (and a card of its own above it).
    for file in (scratch / COMBINED_ADAPTER).iterdir():
        os.replace(file, staging / file.name)
    shutil.rmtree(scratch)


def point_adapter_at_base(config_file: Path, base: BaseModelReference) -> None:
    """The adapter's base as any loader finds it (training saw a cache folder for the embedded default)."""
    adapter_config = json.loads(config_file.read_text(encoding="utf-8"))
    adapter_config["base_model_name_or_path"] = base.name_or_path
    adapter_config["revision"] = base.revision
    io.write_json(config_file, adapter_config)


def write_tokenizer_and_generation_config(staging: Path, served: ServedModel):
    """The trained model's tokenizer (chat template included) and a generation config that stops at the end of
    the assistant's turn; returns the tokenizer."""
    from transformers import AutoTokenizer, GenerationConfig

    source = str(served.model_folders[0])
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:  # as the policy pads: with eos
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(str(staging))
    try:
        generation_config = GenerationConfig.from_pretrained(source)
    except OSError:
        generation_config = GenerationConfig()
    generation_config.eos_token_id = end_of_turn_ids(tokenizer)
    generation_config.pad_token_id = tokenizer.pad_token_id
    generation_config.save_pretrained(str(staging))
    return tokenizer


# ---------------------------------------------------------------------------------------------- what it is


def export_record(run_dir: Path, served: ServedModel, method_name: str, kind: str, base: BaseModelReference,
                  tokenizer) -> dict:
    """``paretohqd.json``: what was exported, and what a prompt must look like for it."""
    config = served.config
    conditioned = served.conditioned([EXAMPLE_PROMPT])[0]
    chat = Policy(None, tokenizer, config.model.system_prompt, config.model.max_prompt_length)
    conditioning = None
    if served.condition is not None:
        conditioning = {"reward_tokens": inserted_text(EXAMPLE_PROMPT, conditioned),
                        "placement": "at the end of the last user message, after a space",
                        "example_prompt": EXAMPLE_PROMPT, "example_conditioned_prompt": conditioned}
    return {"format": "paretohqd-export", "format_version": EXPORT_FORMAT_VERSION, "paretohqd_version": _version(),
            "run": str(Path(run_dir).resolve()), "method": served.method, "method_name": method_name,
            "objectives": list(config.objective_names), "weights": served.weights, "mode": served.mode,
            "model": served.name or None, "made_from": served.made_from, "mix": served.mix,
            "direction": direction_of(served), "export": kind, "base_model": base.describe(),
            "conditioning": conditioning,
            "chat": {"system_prompt": config.model.system_prompt,
                     "max_prompt_length": config.model.max_prompt_length,
                     "format": "plain" if chat.plain else "chat_template",
                     "example_chat_text": chat.chat_text(conditioned)}}


def direction_of(served: ServedModel) -> list[float] | None:
    """ParetoHqD's ray for the preference: its direction in normalised reward space, from the ideal point."""
    if served.method != "paretohqd":
        return None
    return [float(x) for x in preference_direction([served.weights])[0]]


def inserted_text(original: str, conditioned: str) -> str:
    """What conditioning wrote into ``original`` (RiC's reward tokens), found as the part between the longest
    common prefix and suffix."""
    start = len(os.path.commonprefix([original, conditioned]))  # noqa: RUF071 (characters, as meant)
    rest, conditioned_rest = original[start:], conditioned[start:]
    end = len(os.path.commonprefix([rest[::-1], conditioned_rest[::-1]]))  # noqa: RUF071
    return conditioned_rest[:len(conditioned_rest) - end].strip()


def evaluation(run_dir: Path, served: ServedModel) -> dict:
    """The run's held-out numbers for the exported model: its own when the run evaluated it (a trained preference,
    or a served one with the same weights and mode), else its neighbours'; and the run's hypervolume."""
    path = Path(run_dir) / "eval" / "metrics.json"
    if not path.is_file():
        return {"evaluated": False, "reason": "the run has not been evaluated (no eval/metrics.json)"}
    metrics = read_metrics(run_dir)
    own = _own_entry(metrics, served)
    result = {"evaluated": own is not None, "num_test_prompts": metrics.get("num_test_prompts"),
              "sampling": metrics.get("sampling")}
    if own is not None:
        result.update(model=own["model"], weights=own["weights"], mean_rewards=own["mean_rewards"],
                      collapse_rate=own["collapse_rate"])
    else:
        result["reason"] = "the run did not evaluate this preference"
        result["neighbours"] = _neighbours(metrics, served)
    result["hypervolume"] = [
        {"name": name, "value": metrics[name], "normalisation": definition.get("normalisation"),
         "reference_point": definition.get("reference_point")}
        for name, definition in metrics.get("hypervolume_definitions", {}).items()
        if not name.startswith("base_") and isinstance(metrics.get(name), (int, float))]
    return result


def _same_weights(a, b) -> bool:
    return a is not None and len(a) == len(b) and bool(np.allclose(a, b, rtol=0, atol=1e-9))


def _own_entry(metrics: dict, served: ServedModel) -> dict | None:
    for entry in metrics.get("preferences", []):
        # The same rule at the same weights is the same model; one trained model serving alone is that model.
        if _same_weights(entry.get("weights"), served.weights) or (
                served.name and entry.get("model") == served.name and served.condition is None):
            return entry
    for entry in metrics.get("served") or []:
        if _same_weights(entry.get("weights"), served.weights) and entry.get("mode") == served.mode:
            return entry
    return None


def _neighbours(metrics: dict, served: ServedModel) -> list[dict]:
    """The evaluated models a preference is made from, or else the two evaluated preferences nearest it."""
    evaluated = {entry["model"]: entry for entry in metrics.get("preferences", [])}
    made_from = [(evaluated[part["model"]], part["weight"]) for part in served.made_from
                 if part["model"] in evaluated]
    if not made_from:
        ranked = sorted(evaluated.values(), key=lambda entry: float(np.linalg.norm(
            np.asarray(entry["weights"], dtype=np.float64) - np.asarray(served.weights))))
        made_from = [(entry, None) for entry in ranked[:2]]
    return [{"model": entry["model"], "weights": entry["weights"], "share": share,
             "mean_rewards": entry["mean_rewards"], "collapse_rate": entry["collapse_rate"]}
            for entry, share in made_from]


def training_data(run_dir: Path, served: ServedModel) -> list[str]:
    """One line per trained model the export is made of: ParetoHqD's selection (stage 1 and, when enabled,
    stage 2) and its training, or the facts of each model's own card."""
    lines = []
    names = [part["model"] for part in served.made_from] or [served.name]
    for name, folder in zip(names, served.model_folders):
        facts = card_facts(folder / CARD_FILE)
        if served.method == "paretohqd":
            stages = [("stage 1 (offline data)", Path(run_dir) / "selection" / f"{name}.json")]
            if served.config.stage2.enabled:
                stages.append(("stage 2 (data the stage-1 models generated)",
                               Path(run_dir) / "stage2" / "selection" / f"{name}.json"))
            for stage, path in stages:
                if path.is_file():
                    lines.append(f"{name}, {stage}: {selection_summary(io.read_json(path))}")
            facts = [fact for fact in facts if fact.startswith("training:")]
        lines += [f"{name or folder.name}: {fact}" for fact in facts]
    return lines


def selection_summary(selection: dict) -> str:
    return (f"the {selection['k']} samples of the first Pareto layers nearest the ray of preference "
            f"{format_vector(selection['weights'], '.3g')} ({selection.get('metric', 'perpendicular')} distance: "
            f"mean {np.mean(selection['distances']):.4f}; mean Pareto layer {np.mean(selection['layers']):.2f}; "
            f"mean raw rewards {format_vector(selection['mean_raw_scores'], '.4g')}; ray direction "
            f"{format_vector(selection['direction'], '.4f')})")


def card_facts(path: Path) -> list[str]:
    """The facts (bullet lines) of a trained model's card about its training."""
    if not path.is_file():
        return []
    body = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.S)
    # The base model is the export's own to name, and how to serve a model is the export's own to say.
    skipped = ("base model:", "serving:", "example prompt:")
    return [line[2:].strip() for line in body.splitlines()
            if line.startswith("- ") and not line[2:].startswith(skipped)]


# ---------------------------------------------------------------------------------------------------- card


def write_card(path: Path, run_dir: Path, served: ServedModel, record: dict) -> None:
    """README.md: front matter the Hub parses (checked by parsing it back), and what the model is."""
    from huggingface_hub import ModelCard

    numbers = evaluation(run_dir, served)
    names = record["objectives"]
    fields = {key: record[key] for key in ("method", "objectives", "weights", "direction", "mode", "model",
                                           "made_from", "export")}
    fields["conditioning"] = record["conditioning"] and record["conditioning"]["reward_tokens"]
    fields["evaluation"] = {key: numbers.get(key) for key in ("evaluated", "model", "mean_rewards",
                                                              "collapse_rate", "num_test_prompts")}
    fields["evaluation"]["hypervolume"] = {hv["name"]: hv["value"] for hv in numbers.get("hypervolume", [])}
    tags = list(dict.fromkeys(["paretohqd", "multi-objective-alignment",
                               METHOD_TAGS.get(served.method, served.method)]))
    header = front_matter(base_model=record["base_model"]["name_or_path"],
                          library_name="peft" if record["export"] == "adapter" else "transformers",
                          pipeline_tag="text-generation", tags=tags, paretohqd=_plain(fields))
    body = card_body(run_dir, served, record, numbers, names)
    card = ModelCard(header + "\n" + body)
    card.save(str(path))
    written = ModelCard.load(str(path))
    if written.data.base_model != record["base_model"]["name_or_path"]:
        raise RuntimeError(f"the model card's front matter does not read back its base model ({path})")


def _plain(value):
    """JSON-safe plain values (numpy scalars out) for the YAML front matter."""
    return json.loads(json.dumps(value, default=io.json_default))


def card_body(run_dir: Path, served: ServedModel, record: dict, numbers: dict, names: list[str]) -> str:
    weights = format_vector(served.weights, ".3g")
    lines = [f"# {record['method_name']} model for preference {weights}", "",
             f"Exported by paretohqd {_version()} from the run `{record['run']}` ({record['method_name']}"
             + (f", mode {served.mode}" if served.mode else "") + f"): {served_as(served)}.", ""]
    lines += ["## Base model", "", *base_lines(record), ""]
    lines += ["## Usage", "", *usage_lines(record), ""]
    lines += ["## Preference", "",
              f"- objectives (maximised): {', '.join(names)}",
              "- preference weights: " + ", ".join(f"{n} {w:.4g}" for n, w in zip(names, served.weights))]
    if record["direction"] is not None:
        lines.append("- direction in normalised reward space (from the ideal point): "
                     f"{format_vector(record['direction'], '.4f')}")
    lines += ["", "## Training data", "", *(f"- {line}" for line in training_data(run_dir, served)
                                            or ["(the trained models' cards are missing)"]), ""]
    lines += ["## Evaluation", "", *evaluation_lines(numbers, names), ""]
    lines += ["## Files", "",
              "- `paretohqd.json`: what was exported (method, weights, mode, what it is made from, objectives"
              + (", the reward tokens every prompt carries" if record["conditioning"] else "") + ")",
              "- `generation_config.json`: eos is the end-of-turn list, so `generate` stops at the end of the "
              "assistant's turn", ""]
    return "\n".join(lines)


def served_as(served: ServedModel) -> str:
    if served.method == "ric":
        return "the run's one RiC model, each prompt carrying this preference's target rewards"
    if served.name and served.made_from:
        part = served.made_from[0]
        trained = format_vector(part["weights"], ".3g")
        return (f"its trained model {served.name} (trained for preference {trained})"
                + ("" if _same_weights(part["weights"], served.weights) else ", the nearest trained preference"))
    if served.name:
        return f"its model {served.name} (one model for every preference)"
    mix = " + ".join(f"{part['weight']:.4g} x {part['model']} {format_vector(part['weights'], '.3g')}"
                     for part in served.made_from)
    rule = ("peft's exact \"cat\" LoRA combination" if is_adapter(served.model_folders[0])
            else "the weighted average of the full fine-tunes' weights")
    return f"the weighted combination {mix} ({rule})"


def base_lines(record: dict) -> list[str]:
    base = record["base_model"]
    if base["source"] == "hub":
        pinned = f" at revision `{base['revision']}`" if base["revision"] else " (no revision pinned: its newest)"
        return [f"`{base['name_or_path']}` from the Hugging Face Hub{pinned}."]
    if base["source"] == "embedded":
        return [f"`{base['name_or_path']}`: paretohqd's embedded default model ({EMBEDDED_DEFAULT}), "
                f"{base['derived_from']}. That folder is paretohqd's cache on the machine that exported this model; "
                "elsewhere, `paretohqd.policy.resolve_model_path(\"embedded:smollm2-135m-instruct\")` makes it again."]
    return [f"`{base['name_or_path']}`: a local folder on the machine that exported this model."]


def usage_lines(record: dict) -> list[str]:
    base = record["base_model"]
    conditioning = record["conditioning"]
    lines = []
    if conditioning:
        lines += [f"Every prompt must carry this preference's target rewards: write `{conditioning['reward_tokens']}` "
                  f"{conditioning['placement']} (RiC was trained on prompts conditioned so). For the prompt "
                  f"\"hi\" the model continues:", "", "```", record["chat"]["example_chat_text"], "```", ""]
    if record["chat"]["system_prompt"]:
        lines += [f"The run's system prompt (the chat template's first message): "
                  f"{json.dumps(record['chat']['system_prompt'])}", ""]
    content = '"How do I bake bread?"' + (f' + " {conditioning["reward_tokens"]}"' if conditioning else "")
    lines.append("```python")
    if record["export"] == "adapter":
        revision = f", revision={base['revision']!r}" if base["revision"] else ""
        lines += ["from peft import PeftModel",
                  "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f"base = AutoModelForCausalLM.from_pretrained({base['name_or_path']!r}{revision})",
                  f"model = PeftModel.from_pretrained(base, {FOLDER_PLACEHOLDER!r})"]
    else:
        lines += ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f"model = AutoModelForCausalLM.from_pretrained({FOLDER_PLACEHOLDER!r})"]
    system = (f'{{"role": "system", "content": {json.dumps(record["chat"]["system_prompt"])}}}, '
              if record["chat"]["system_prompt"] else "")
    lines.append(f"tokenizer = AutoTokenizer.from_pretrained({FOLDER_PLACEHOLDER!r})")
    if record["chat"].get("format") == "plain":  # a base model without a chat template: the plain HH-RLHF format
        prefix = json.dumps(record["chat"]["system_prompt"] or "")
        lines += [f'text = {prefix} + "\\n\\nHuman: " + {content} + "\\n\\nAssistant:"',
                  "inputs = tokenizer(text, return_tensors=\"pt\")"]
    else:
        lines += [f'messages = [{system}{{"role": "user", "content": {content}}}]',
                  "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", "
                  "return_dict=True)"]
    lines += ["output = model.generate(**inputs, max_new_tokens=128)",
              "print(tokenizer.decode(output[0, inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))",
              "```"]
    return lines


def evaluation_lines(numbers: dict, names: list[str]) -> list[str]:
    def rewards(values) -> str:
        return ", ".join(f"{n} {v:.4g}" for n, v in zip(names, values))

    if "hypervolume" not in numbers:
        return [f"Not evaluated: {numbers['reason']}."]
    sampling = numbers.get("sampling") or {}
    shown = ", ".join(f"{key} {sampling[key]}" for key in ("do_sample", "temperature", "top_p", "max_new_tokens")
                      if key in sampling)
    lines = [f"Held out: {numbers['num_test_prompts']} test prompts" + (f", sampled with {shown}" if shown else "")
             + "; mean raw rewards of the responses, and the share of degenerate (collapsed) responses.", ""]
    if numbers["evaluated"]:
        lines.append(f"- this model (as {numbers['model']}, preference {format_vector(numbers['weights'], '.3g')}): "
                     f"mean rewards {rewards(numbers['mean_rewards'])}; collapse rate {numbers['collapse_rate']:.2%}")
    else:
        lines.append(f"- this preference: not evaluated ({numbers['reason']}); its neighbours:")
        for entry in numbers["neighbours"]:
            share = f", share {entry['share']:.4g}" if entry["share"] is not None else ""
            lines.append(f"  - {entry['model']} (preference {format_vector(entry['weights'], '.3g')}{share}): mean "
                         f"rewards {rewards(entry['mean_rewards'])}; collapse rate {entry['collapse_rate']:.2%}")
    for hv in numbers["hypervolume"]:
        normalisation, reference = hv["normalisation"] or {}, hv["reference_point"] or {}
        frame = (f"{normalisation.get('method', '?')} normalisation"
                 + (f" from {format_vector(normalisation['low'])} to {format_vector(normalisation['high'])}"
                    if normalisation.get("low") is not None else "")
                 + (f" over {normalisation['over']}" if normalisation.get("over") else ""))
        point = (f"reference point {format_vector(reference['raw'])} raw" if reference.get("raw") is not None
                 else "reference point ?") + (f" ({reference['rule']})" if reference.get("rule") else "")
        lines.append(f"- the run's trained front, {hv['name']}: {hv['value']:.4f} ({frame}; {point})")
    return lines
