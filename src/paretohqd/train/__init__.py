"""Training one policy on one set of samples: supervised fine-tuning (trl.SFTTrainer + peft)."""

from .cards import ModelCard
from .sft import TrainingPlan, check_training_settings, plan_training, split_settings, train_model

__all__ = ["ModelCard", "TrainingPlan", "check_training_settings", "plan_training", "split_settings", "train_model"]
