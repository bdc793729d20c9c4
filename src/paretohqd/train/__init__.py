"""Supervised fine-tuning of one policy per preference and stage (trl.SFTTrainer + peft)."""

from .sft import TrainingPlan, plan_training, train_model

__all__ = ["TrainingPlan", "plan_training", "train_model"]
