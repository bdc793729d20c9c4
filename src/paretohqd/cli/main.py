"""`paretohqd`'s entry point: parse, dispatch to a command, and turn every refusal into one sentence and an exit
code."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import commands
from .parser import STAGE_HELP, build_parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = _negative_values_attached(list(sys.argv[1:] if argv is None else argv))
    args, rest = parser.parse_known_args(argv)
    from ..errors import UserError
    from ..locking import set_command

    set_command(argv)
    previous = _stop_on_sigterm()
    from ..env import quiet_library_warnings

    quiet_library_warnings()
    try:
        return _dispatch(parser, args, rest, argv)
    except UserError as exc:
        print(f"paretohqd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the file system refused (full, read-only, no permission): not a bug to trace back
        from ..errors import describe_os_error

        print(f"paretohqd: error: {describe_os_error(exc)}; finished units are kept and the next run resumes from "
              "them", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        code = 143 if isinstance(exc, Terminated) else 130
        print(f"paretohqd: {'terminated' if code == 143 else 'interrupted'}; finished units are kept and the next run "
              "resumes from them", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)


def _check_arguments_are_text(argv: list[str]) -> None:
    """Every argument is text before it reaches a file name, a prompt or a config: bytes that are not UTF-8 (which
    Python hands over as lone surrogates) are one sentence naming the argument."""
    from ..text import check_text

    for index, token in enumerate(argv):
        if token.startswith("--"):
            where = f"argument {token.split('=', 1)[0]}"
        elif index and argv[index - 1].startswith("--"):
            where = f"the value of {argv[index - 1]}"
        else:
            where = f"argument {index + 1}"
        check_text(token, where)


NUMBER_OPTIONS = {"--weights": 1, "--served": 1, "--reference_point": None, "--reference-point": None}
"""Options whose values are numbers that may be negative (``-1e3``, ``-inf``), which argparse would take for options
(its own rule knows only ``-12`` and ``-.5``): how many values each takes (None: all the numbers that follow)."""


def _negative_values_attached(argv: list[str]) -> list[str]:
    """``--weights -1,2`` as ``--weights=-1,2``, ``--reference_point -1e3 -inf`` as ``--reference_point=-1e3,-inf``:
    the values' own checks then name what is wrong with them (a negative weight, a reference that is not finite)."""
    from .commands import looks_like_a_number

    out: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token not in NUMBER_OPTIONS:
            out.append(token)
            continue
        values = []
        while index < len(argv) and (NUMBER_OPTIONS[token] is None or not values) and not argv[index].startswith("--") \
                and all(looks_like_a_number(part) for part in argv[index].split(",") if part):
            values.append(argv[index])
            index += 1
        out.append(f"{token}={','.join(values)}" if values else token)
    return out


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`): unwinds like Ctrl-C, so that no temporary file is left behind."""


def _stop_on_sigterm():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def terminate(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, terminate)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, rest: list[str], argv: list[str]) -> int:
    from ..errors import UserError

    _check_arguments_are_text(argv)
    if args.version:
        from .. import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "plan":
        from .. import api

        return commands.print_states(api.status(api.load_config(args.config, rest), args.plan_command), args.keys)
    if args.command in STAGE_HELP:
        if args.command == "generate":
            from ..pipeline.serve import is_run_directory

            if Path(args.config).is_dir() or is_run_directory(args.config):
                return commands.serve(args, rest)
            if args.weights is not None or args.prompt is not None or args.prompts is not None:
                raise UserError(f"--weights, --prompt and --prompts serve a finished run: '{args.config}' is a config "
                                "file, not a run directory")
            if args.seed is not None:  # the config's own top-level setting, which this option shadows
                rest = ["--seed", str(args.seed), *rest]
        if args.accelerate_config is not None:
            return commands.relaunch(args, rest, argv)
        return commands.stage(args, rest)
    if args.command == "demo":  # the recipe's settings, overridden as for `run` (--train.sft.max_steps 2)
        return commands.demo(args, rest)
    if rest:
        raise UserError(f"unexpected arguments for '{args.command}': {' '.join(rest)}")
    if args.command == "export":
        return commands.export(args)
    if args.command == "push":
        return commands.push(args)
    if args.command == "compare":
        from ..api import compare
        from ..evaluate.compare_tables import format_comparison

        reference = (None if args.reference_point is None
                     else commands.numbers(" ".join(args.reference_point), "--reference_point"))
        result = compare(args.run_dirs, args.output, reference, bootstrap=args.bootstrap,
                         bootstrap_seed=args.bootstrap_seed, labels=args.labels)
        print(format_comparison(result))
        print(f"wrote {args.output}/compare.json, compare.csv, compare.png, compare.md, compare.html")
        return 0
    if args.command == "status":
        from .. import api

        return commands.print_states(api.status(args.run_dir), args.keys)
    if args.command == "env":
        from ..env import environment, format_environment

        print(format_environment(environment()))
        return 0
    if args.command == "rewards":
        return commands.rewards(args)
    raise UserError(f"unknown command '{args.command}'")


def exit_with(code: int) -> None:
    """Exit with ``code``. A process of a multi-process launch that failed leaves at once, its sentence said: the
    interpreter's teardown of process groups whose peers are failing too can abort it ("terminate called without an
    active exception", signal 6), and the launch would then report that instead of the failure's own exit code.
    Everything it finished is already on disk, written atomically."""
    from ..pipeline.distributed import launched_world

    if code and launched_world()[1] > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
