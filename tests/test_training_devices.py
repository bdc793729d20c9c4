"""A training process uses one device: the global batch is what the plan says, whatever the machine has."""

import torch

from paretohqd.config import ModelConfig
from paretohqd.train.common import trainer_arguments


def test_a_local_run_trains_on_one_device_even_where_several_gpus_are_visible(tmp_path):
    from trl import SFTConfig

    class FourVisibleGPUs(SFTConfig):
        """What transformers makes of a process that sees 4 GPUs outside a launch (no GPU here to show it)."""

        def __post_init__(self):
            super().__post_init__()
            self.__dict__["_setup_devices"] = torch.device("cpu")  # cached_property: the device is set up
            self._n_gpu = 4

    probe = FourVisibleGPUs(output_dir=str(tmp_path / "probe"), per_device_train_batch_size=2, use_cpu=True)
    assert probe.n_gpu == 4 and probe.train_batch_size == 8  # what nn.DataParallel would train on
    args = trainer_arguments(FourVisibleGPUs, {"per_device_train_batch_size": 2, "max_steps": 1}, tmp_path, 0, "none",
                             ModelConfig(device="cpu"), progress=False)
    assert args.n_gpu == 1 and args.train_batch_size == 2  # no nn.DataParallel: the plan's global batch
