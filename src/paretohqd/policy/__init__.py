"""The policy: one object that owns loading (Hub id, local folder, the embedded GGUF), device placement, trained
adapters (one, or a weighted combination), the chat template, prompt truncation and end-of-turn ids; and its
generation backend (Hugging Face ``generate``)."""

from .generation import clean_response, generate_responses, sampling_record
from .load import EMBEDDED_DEFAULT, check_model, load_causal_lm, model_identity, resolve_device, resolve_model_path
from .policy import Policy, end_of_turn_ids, load_policy, on_device

__all__ = ["EMBEDDED_DEFAULT", "Policy", "check_model", "clean_response", "end_of_turn_ids", "generate_responses",
           "load_causal_lm", "load_policy", "model_identity", "on_device", "resolve_device", "resolve_model_path",
           "sampling_record"]
