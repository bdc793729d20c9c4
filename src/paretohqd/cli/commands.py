"""What each `paretohqd` command does once its arguments are parsed: thin calls of the Python API
(``paretohqd.api``) and what they print; heavy imports happen inside, so that `paretohqd --help` answers at once."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def print_states(rows: list[dict], keys: bool) -> int:
    from ..pipeline.status import state_counts

    width = max((len(row["unit"]) for row in rows), default=4)
    for row in rows:
        seconds = f"{row['wall_seconds']:.0f} s" if row["wall_seconds"] is not None else ""
        print(f"{row['unit']:<{width}}  {row['state']:<11}  {seconds:>7}" + (f"  {row['key']}" if keys else ""))
    print(", ".join(f"{count} {state}" for state, count in state_counts(rows).items()) + f" of {len(rows)} units")
    return 0


def stage(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import api

    config = api.load_config(args.config, overrides)
    api.run_stage(config, args.command, force=getattr(args, "force", False), overwrite=args.overwrite,
                  wait=args.wait)
    from ..pipeline.distributed import is_main_process

    if args.command == "select" and is_main_process():
        from ..pipeline.select import format_selection_table

        print(format_selection_table(Path(config.output_dir) / "selection"))
    return 0


def serve(args: argparse.Namespace, rest: list[str]) -> int:
    """``generate RUN --weights ...``: one response per prompt from the model the run serves for the preference."""
    import contextlib
    import json

    from .. import io
    from ..errors import UserError
    from ..pipeline.serve import claimed_output_file
    from ..serving import load_policy

    if args.weights is None:
        raise UserError(f"'{args.config}' is a run directory: say which preference to serve with --weights W1,W2,...")
    if (args.prompt is None) == (args.prompts is None):
        raise UserError("give the prompts to answer with --prompt TEXT (repeatable) or --prompts FILE, one of them")
    weights = numbers(args.weights)
    overrides = _sampling_overrides(rest)
    if args.accelerate_config is not None:
        raise UserError("serving a run answers in this process: leave out --accelerate_config")
    prompts = args.prompt
    if args.prompts is not None:
        from ..data import load_prompts

        prompts = load_prompts(args.prompts, prompt_column=args.prompt_column,
                               column_setting="--prompt_column")["prompt"].tolist()
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

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)
"""A number as a user writes one: ``0.3``, ``-1e3``, ``.5``, ``inf``; not Python's ``1_0``, which reads as 10."""


def looks_like_a_number(text: str) -> bool:
    return NUMBER.fullmatch(text.strip()) is not None


def numbers(text: str, option: str = "--weights") -> list[float]:
    """``0.3,0.7`` (or ``0.3 0.7``) as numbers; an empty place (``0.5,0.5,``, ``,0.5``), a word or Python's
    ``1_0`` is one sentence: a dropped or misread weight would silently serve another preference."""
    from ..errors import UserError

    parts = text.replace(" ", ",").split(",")
    if not all(looks_like_a_number(part) for part in parts):
        raise UserError(f"{option} must be numbers separated by commas (0.3,0.7), not '{text}'")
    return [float(part) for part in parts]


def _sampling_overrides(rest: list[str]) -> list[str]:
    """``--sampling.max_new_tokens 64`` -> the run's ``evaluate.sampling`` (what serving samples with)."""
    from ..errors import UserError

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


def relaunch(args: argparse.Namespace, extra: list[str], argv: list[str]) -> int:
    """The same command on every process of an accelerate launch; a bad launch config or run config fails here,
    once, before any process starts."""
    from .. import api, launch

    config_file = launch.accelerate_config_path(args.accelerate_config)
    launch.check_launch(config_file)
    launch_options, overrides = launch.split_launch_options(extra)
    config = api.load_config(args.config, overrides)
    return launch.relaunch(argv, config_file, launch_options, config.output_dir, args.overwrite, args.wait)


def demo(args: argparse.Namespace, overrides: list[str]) -> int:
    from .. import api, io
    from ..evaluate.metrics import BASE_HV_RUN_WORST, HV_RUN_BASE, HV_RUN_WORST, format_front_table
    from ..tables import format_vector

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
    return Path(__file__).resolve().parents[1] / "recipes" / f"{name}.yaml"


def rewards(args: argparse.Namespace) -> int:
    from ..errors import UserError

    if args.rewards_command == "list":
        from ..rewards import builtin

        print(builtin.__doc__.split("\n\n", 1)[1].strip())
        return 0
    if args.rewards_command == "fit":
        from ..rewards.heads.fit import fit_and_save

        report = fit_and_save(args.data, args.output, heldout_fraction=args.heldout_fraction, seed=args.seed,
                              kind=args.kind)
        print(f"wrote {args.output}: held-out pairwise accuracy {report['heldout_accuracy']:.4f} on "
              f"{report['n_heldout_pairs']} pairs not used for fitting (fit accuracy {report['fit_accuracy']:.4f})")
        # Said, not only recorded in the report: rows of the user's files that were not used, or taught nothing.
        left_out, same = report["n_left_out_pairs"], report["n_same_reply_pairs"]
        if left_out:
            print(f"left out {left_out} pair{'s' * (left_out != 1)} whose two dialogues differ before the final reply "
                  "(no shared prompt to compare on)")
        if same:
            print(f"{same} of the {report['n_pairs']} pairs {'have' if same != 1 else 'has'} the same reply as "
                  "chosen and rejected: they state no preference, leave the head unchanged and count as ties (half "
                  "right) in the accuracies above")
        return 0
    raise UserError("rewards needs an action: list or fit")


def export(args: argparse.Namespace) -> int:
    from .. import api, io

    folder = api.export(args.run_dir, numbers(args.weights), args.output, merge=args.merge, mode=args.mode,
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


def push(args: argparse.Namespace) -> int:
    from .. import api
    from ..pushing import PUSH_RECORD, file_listing

    # An empty --served is no weights (which push's checks refuse as such), not text that is not numbers.
    served = [numbers(text, "--served") if text.strip() else [] for text in args.served]
    repos = api.push(args.run_dir, args.repo_prefix, private=args.private, served=served, mode=args.mode,
                     license=args.license, base_model=args.base_model, merge=args.merge, dry_run=args.dry_run,
                     log=lambda line: print(f"paretohqd: {line}", file=sys.stderr))
    if args.dry_run is not None:
        print("\n".join(file_listing(repos)))
        record = Path(args.dry_run).expanduser() / PUSH_RECORD
        print(f"dry run: nothing uploaded; the folders above and {record} (the repos and the collection a push "
              "makes)")
    else:
        print(f"pushed {len(repos)} repos: " + ", ".join(repo.repo_id for repo in repos))
    return 0
