"""Batched generation with Hugging Face models (left padding, chat template, recorded sampling settings)."""

from .hf import clean_response, generate_responses

__all__ = ["clean_response", "generate_responses"]
