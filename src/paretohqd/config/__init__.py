"""Run configuration: one dataclass per section (``sections``), loaded from YAML with dotted command-line
overrides (``loading``). Precedence follows TRL: defaults < ``--config`` YAML < ``--section.key value``."""

from .base import SettingError
from .loading import did_you_mean, dump_yaml, from_dict, load_config, parse_overrides, read_yaml
from .methods import ModpoConfig, MorlhfConfig, RiCConfig, RiCOfflineConfig, RiCOnlineConfig, SoupsConfig, Stage2Config
from .run import RunConfig
from .sections import (
                       LORA_DEFAULTS,
                       SFT_DEFAULTS,
                       UNIT_KINDS,
                       CollapseConfig,
                       DataConfig,
                       EvaluateConfig,
                       ExecutionConfig,
                       GenerationConfig,
                       ModelConfig,
                       ObjectiveConfig,
                       PreferencesConfig,
                       SamplingConfig,
                       ScoreConfig,
                       SelectConfig,
                       TrainConfig,
                       UnitResources,
)

__all__ = [
                       "LORA_DEFAULTS",
                       "SFT_DEFAULTS",
                       "UNIT_KINDS",
                       "CollapseConfig",
                       "DataConfig",
                       "EvaluateConfig",
                       "ExecutionConfig",
                       "GenerationConfig",
                       "ModelConfig",
                       "ModpoConfig",
                       "MorlhfConfig",
                       "ObjectiveConfig",
                       "PreferencesConfig",
                       "RiCConfig",
                       "RiCOfflineConfig",
                       "RiCOnlineConfig",
                       "RunConfig",
                       "SamplingConfig",
                       "ScoreConfig",
                       "SelectConfig",
                       "SettingError",
                       "SoupsConfig",
                       "Stage2Config",
                       "TrainConfig",
                       "UnitResources",
                       "did_you_mean",
                       "dump_yaml",
                       "from_dict",
                       "load_config",
                       "parse_overrides",
                       "read_yaml",
]
