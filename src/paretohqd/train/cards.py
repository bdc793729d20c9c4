"""Model cards: what a method states about one trained model, rendered in one layout for every method."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelCard:
    """A method's facts about one model; :func:`paretohqd.train.train_model` adds the base model, the training
    facts and the front matter, so every method's card has the same shape."""

    title: str
    tags: list[str]
    facts: list[str]

    def render(self, base_model: str, lora: bool, stats: dict) -> str:
        library = "peft" if lora else "transformers"
        lines = ["---", f"library_name: {library}", f"base_model: {base_model}",
                 f"tags: [{', '.join(['paretohqd', *self.tags])}]", "---", "", f"# {self.title}", "",
                 f"- base model: `{base_model}`", *(f"- {fact}" for fact in self.facts),
                 f"- training: {stats['steps']} steps, global batch {stats['global_batch_size']}, "
                 f"{stats['epochs']:.2f} epochs, learning rate {stats['learning_rate']}, LoRA {lora}, "
                 f"final train loss {stats['train_loss']:.4f}, {stats['seconds']:.0f} s",
                 "", "Made with paretohqd.", ""]
        return "\n".join(lines)
