"""``--accelerate_config``: a stage command relaunched under ``accelerate launch``, as ``trl``'s CLI does it.

``paretohqd run CONFIG --accelerate_config zero3 [--num_processes 4] [--section.key value ...]`` resolves the name
to a YAML shipped in ``paretohqd/accelerate_configs`` (or takes a file), turns it into ``--config_file PATH``, and
hands accelerate's own launch parser ``--config_file PATH [launch options] --module paretohqd.cli <the same command
without --accelerate_config>``, then runs accelerate's ``launch_command`` in this process (trl 1.16:
``trl.cli.accelerate_config.resolve_accelerate_config_argument`` and
``trl.cli.accelerate_launcher.launch_training_script``). Arguments that are options of ``accelerate launch`` and no
config key (``--num_processes``, ``--num_machines``, ``--main_process_ip``, ...) go to the launcher, as trl passes on
what its script's parser leaves over; everything else stays with the relaunched command.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
from pathlib import Path

from .errors import UserError
from .locking import folder_lock_file, handed_down
from .pipeline.distributed import launched_world
from .pipeline.rundir import RunDir

CONFIG_FOLDER = Path(__file__).resolve().parent / "accelerate_configs"
SHIPPED = ("ddp", "zero2", "zero3", "fsdp2")
OPTION = "--accelerate_config"


def accelerate_config_path(value: str) -> Path:
    """A YAML file, or the name of a shipped config (``ddp``, ``zero2``, ``zero3``, ``fsdp2``)."""
    if Path(value).is_file():
        return Path(value)
    if value in SHIPPED:
        return CONFIG_FOLDER / f"{value}.yaml"
    raise UserError(f"{OPTION} {value!r} is neither a file nor a shipped accelerate config ({', '.join(SHIPPED)})")


def split_launch_options(arguments: list[str]) -> tuple[list[str], list[str]]:
    """(options for ``accelerate launch``, the rest: config overrides) out of a stage command's extra arguments."""
    from accelerate.commands.launch import launch_command_parser

    from .config import RunConfig

    # argparse keeps no public table of a parser's options; this one has been stable since Python 3.2.
    options = launch_command_parser()._option_string_actions
    config_keys = {f"--{field.name}" for field in dataclasses.fields(RunConfig)}
    launch: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(arguments):
        token = arguments[index]
        name = token.split("=", 1)[0]
        action = options.get(name) if name.startswith("--") and name not in config_keys else None
        if action is None or name in ("--help", "--module", "--config_file"):
            rest.append(token)
            index += 1
            continue
        takes_value = action.nargs != 0 and "=" not in token and index + 1 < len(arguments) \
            and not (action.nargs == "?" and arguments[index + 1].startswith("--"))
        taken = arguments[index:index + 1 + takes_value]
        launch += taken
        index += len(taken)
    return launch, rest


def without_launch_arguments(argv: list[str], launch: list[str]) -> list[str]:
    """``argv`` less ``--accelerate_config VALUE`` and the launch options (an ordered subsequence of it, as trl's
    ``_subtract_subsequence`` removes them): the command every launched process runs."""
    kept: list[str] = []
    pending = iter(launch)
    expected = next(pending, None)
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
        elif token == OPTION:
            skip_value = True
        elif token.startswith(OPTION + "="):
            pass
        elif expected is not None and token == expected:
            expected = next(pending, None)
        else:
            kept.append(token)
    return kept


def check_launch(config_file: Path) -> None:
    """What accelerate would only find out in every process: a DeepSpeed config without DeepSpeed, or a launch
    from inside another launch."""
    import yaml

    if launched_world()[1] > 1:
        raise UserError(f"{OPTION} relaunches under accelerate launch, but this process is already one of a "
                        "multi-process launch: drop it")
    try:
        settings = yaml.safe_load(config_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{OPTION} {config_file}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
    if not isinstance(settings, dict):
        raise UserError(f"{OPTION} {config_file}: an accelerate config is a mapping of settings")
    if settings.get("distributed_type") == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        raise UserError(f"{OPTION} {config_file.stem} uses DeepSpeed, which is not installed: pip install deepspeed")


def process_count_options(config_file: Path, launch_options: list[str], visible_gpus: int | None = None,
                          log=print) -> list[str]:
    """``--num_processes`` for a one-machine GPU launch that does not give it: one process per visible GPU (the
    shipped configs say 8; on fewer GPUs that fails with "invalid device ordinal", on more it leaves GPUs idle).
    A launch over several machines, on CPUs, or with the option given keeps what it says."""
    import yaml

    if any(option.split("=", 1)[0] in ("--num_processes", "--cpu") for option in launch_options):
        return []
    settings = yaml.safe_load(config_file.read_text()) or {}
    if settings.get("use_cpu") or int(settings.get("num_machines", 1) or 1) > 1 \
            or settings.get("distributed_type") in (None, "NO"):
        return []
    if visible_gpus is None:
        import torch

        visible_gpus = torch.cuda.device_count()
    if visible_gpus < 1:
        raise UserError(f"{OPTION} {config_file.stem} starts one process per GPU, and no GPU is visible here: pass "
                        "--num_processes N --cpu to launch CPU processes")
    if settings.get("num_processes") != visible_gpus:
        log(f"{OPTION} {config_file.stem}: {visible_gpus} processes, one per visible GPU (the config says "
            f"{settings.get('num_processes')}; --num_processes N decides)")
    return ["--num_processes", str(visible_gpus)]


def relaunch(argv: list[str], config_file: Path, launch_options: list[str], output_dir: str,
             overwrite: bool = False, wait: bool = False) -> int:
    """Run ``argv`` (a stage command) on every process ``config_file`` asks for; the launched processes' exit code
    (2 when they stopped on a bad setting, each having said why). This process holds the run directory ``output_dir``
    for them (refused, or cleared with ``overwrite``, here: once, before any process starts)."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    arguments = launch_command_parser().parse_args(
        ["--config_file", str(config_file), *launch_options, *process_count_options(config_file, launch_options),
         "--module", "paretohqd.cli", *without_launch_arguments(argv, launch_options)])
    run = RunDir(output_dir)
    run.check_writable()
    with run.claimed(overwrite, wait, log=print), handed_down(folder_lock_file(run.path)):
        try:
            launch_command(arguments)
        except ChildFailedError as exc:
            codes = [failure.exitcode for failure in exc.failures.values()]
            return next((code for code in codes if code > 0), 1)
        except subprocess.CalledProcessError as exc:  # accelerate's one-process and multi-node launchers
            return exc.returncode if exc.returncode > 0 else 1
        except SignalException:  # Ctrl-C: the launcher has stopped the processes, which keep what they finished
            raise KeyboardInterrupt from None
        except ValueError as exc:  # accelerate's checks of the config and options, before any process starts
            raise UserError(f"accelerate launch refuses {config_file}: {str(exc).splitlines()[0]}") from None
    return 0
