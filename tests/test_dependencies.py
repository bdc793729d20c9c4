"""The dependency floors say what the code needs: installed versions meet them, they are no lower than what trl
(whose configs the run fills) requires itself, and every trainer field the project's defaults set exists in the
installed configs, under its transformers-5 name or the earlier one transformers 4.56 knows. Installs nothing."""

import dataclasses
import importlib.metadata as metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from paretohqd.config.sections import SFT_DEFAULTS
from paretohqd.train.common import EARLIER_NAMES, for_installed

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def floors() -> dict[str, Version]:
    block = re.search(r"^dependencies = \[(.*?)^\]", PYPROJECT.read_text(), flags=re.S | re.M).group(1)
    requirements = [Requirement(line) for line in re.findall(r'"([^"]+)"', block)]  # (tomllib: Python 3.11+)
    return {r.name: Version(s.version) for r in requirements for s in r.specifier if s.operator in (">=", "==")}


def test_installed_versions_meet_the_floors():
    for name, floor in floors().items():
        installed = Version(re.sub(r"\+.*", "", metadata.version(name)))
        assert installed >= floor, f"{name} {installed} is below the floor {floor}"


def test_the_floors_are_no_lower_than_trls_own():
    ours = floors()
    for line in metadata.requires("trl"):
        requirement = Requirement(line)
        if requirement.marker is not None or requirement.name not in ours:
            continue
        for spec in requirement.specifier:
            if spec.operator == ">=":
                assert ours[requirement.name] >= Version(spec.version), \
                    f"{requirement.name}>={ours[requirement.name]} but trl needs >={spec.version}"


def test_every_default_trainer_field_exists_in_the_installed_configs():
    from trl import DPOConfig, RLOOConfig, SFTConfig

    from paretohqd.train.common import SFT_ONLY_FIELDS

    for config_class, excluded in ((SFTConfig, ()), (DPOConfig, SFT_ONLY_FIELDS["dpo"]),
                                   (RLOOConfig, SFT_ONLY_FIELDS["rloo"])):
        names = {f.name for f in dataclasses.fields(config_class)}
        settings = for_installed(config_class, {k: v for k, v in SFT_DEFAULTS.items() if k not in excluded})
        assert set(settings) <= names, (config_class.__name__, set(settings) - names)


def test_transformers_4_names_are_used_where_the_config_lacks_the_new_ones():
    """A config class as transformers 4.56 defines it: gradient_checkpointing, no activation_checkpointing."""
    Old = dataclasses.make_dataclass("Old", [("gradient_checkpointing", bool, False),
                                             ("gradient_checkpointing_kwargs", dict, None), ("max_steps", int, 1)])
    assert for_installed(Old, {"activation_checkpointing": True, "max_steps": 3}) == {
        "gradient_checkpointing": True, "max_steps": 3}
    New = dataclasses.make_dataclass("New", [("activation_checkpointing", bool, False),
                                             ("gradient_checkpointing", bool, False)])
    assert for_installed(New, {"activation_checkpointing": True}) == {"activation_checkpointing": True}
    assert set(EARLIER_NAMES) == {"activation_checkpointing", "activation_checkpointing_kwargs"}
