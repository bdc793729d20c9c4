"""A Hugging Face sequence-classification reward model with an explicit input format and logit index.

Scores must not depend on batch size or padding: padding is on the right, the pad token is never confused with
content the model pools on, and :func:`paretohqd.rewards.scoring.check_batch_invariance` verifies it on real
samples before a long scoring run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class HFRewardModel:
    def __init__(self, name: str, model: str, input_format: str = "pair", logit_index: int = 0,
                 max_length: int = 1024, dtype: str = "float32", pad_token: str | None = None,
                 device: str = "cpu", template: str | None = None, context_column: str = "prompt",
                 revision: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = name
        self.model_id = model
        self.input_format = input_format
        self.logit_index = logit_index
        self.template = template
        self.context_column = context_column
        self.device = device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model, revision=revision, dtype=getattr(torch, DTYPES[dtype]))
        except OSError as exc:
            raise UserError(f"objective '{name}': cannot load reward model '{model}' "
                            f"(not a local folder, and the Hub is unreachable or has no such id): "
                            f"{str(exc).splitlines()[0]}") from None
        self.model.to(device).eval()
        num_labels = self.model.config.num_labels
        if not -num_labels <= logit_index < num_labels:
            raise UserError(f"objective '{name}': logit_index {logit_index} is out of range for a model with "
                            f"{num_labels} output logits")
        # Right padding keeps absolute positions identical to the unpadded sequence for causal models.
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            # A dedicated pad token, never eos: causal heads pool on the last non-pad token, and an eos inside
            # the text must not be mistaken for padding. Its new embedding row is only ever seen at masked or
            # trailing positions, which right padding keeps out of the pooled logit.
            wanted = pad_token or "[PAD]"
            if wanted in self.tokenizer.get_vocab():
                self.tokenizer.pad_token = wanted
            else:
                self.tokenizer.add_special_tokens({"pad_token": wanted})
                self.model.resize_token_embeddings(len(self.tokenizer))
        # Causal reward heads pool on the last token that is not the pad id, so the model must know the pad id.
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        model_limit = getattr(self.model.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, model_limit)

    def _encode(self, batch: pd.DataFrame):
        responses = batch["response"].tolist()
        common = dict(truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        if self.input_format == "pair":
            return self.tokenizer(batch["prompt"].tolist(), responses, **common)
        if self.input_format == "response":
            return self.tokenizer(responses, **common)
        if self.input_format == "reversed_pair":
            if self.context_column not in batch.columns:
                raise UserError(f"objective '{self.name}' pairs the response with column '{self.context_column}', "
                                "which the data does not have")
            return self.tokenizer(responses, batch[self.context_column].astype(str).tolist(), **common)
        fields = {"bos": self.tokenizer.bos_token or "", "eos": self.tokenizer.eos_token or ""}
        try:
            texts = [self.template.format(**fields, **row) for row in batch.to_dict("records")]
        except KeyError as exc:
            raise UserError(f"objective '{self.name}': template field {exc} is not a data column") from None
        return self.tokenizer(texts, **common)

    def score(self, batch: pd.DataFrame) -> np.ndarray:
        import torch

        encoded = self._encode(batch).to(self.device)
        with torch.inference_mode():
            logits = self.model(**encoded).logits
        return logits[:, self.logit_index].float().cpu().numpy().astype(np.float64)
