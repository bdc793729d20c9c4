"""What ``paretohqd push`` is given, checked before it exports, prints or writes anything (:func:`check_push`): the
repo ids it would create against the Hub's rules, the licence and base model the cards name, each served
preference, the dry-run folder, and that the Hub is not switched off. One sentence naming the option and its value on
the first that is wrong."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .exporting import CARD_FILE
from .methods import get_method
from .model_files import is_local_path
from .pipeline.rundir import inside_run_directory, read_metrics
from .pipeline.serve import check_serving_weights, run_config
from .policy.load import EMBEDDED_DEFAULT

DATA_SUFFIX = "data"

EMBEDDED_BASE_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub model the embedded default is derived from (its Q4_1 GGUF dequantised): what a card on the Hub names as
its base, where the local card names the converted folder."""

EMBEDDED_BASE_LICENSE = "apache-2.0"
"""The embedded default model's licence: that of the Hub model it is derived from."""

REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

@dataclass
class PushInputs:
    """What :func:`check_push` found every input of a push to be, checked: the run read once, the licence and the
    base model the cards name, the models to export (name, weights, serving mode) and the dry-run folder."""

    run_dir: Path
    namespace: str
    name: str
    config: object
    metrics: dict
    method: object
    license: str
    hub_base: str | None
    wanted: list[tuple[str, list[float], str | None]]
    dry_run: Path | None

def check_push(run_dir: str | Path, repo_prefix: str, served: Sequence[Sequence[float]] = (),
               mode: str | None = None, license: str | None = None, base_model: str | None = None,
               dry_run: str | Path | None = None, api=None) -> PushInputs:
    """Every input of :func:`push_run` checked before it exports, prints or writes anything: the prefix and every
    repo id it makes, the licence, the base model id, each served preference, the dry-run folder and, for a real
    push, that the Hub is not switched off. One sentence naming the option and its value on the first that is
    wrong: a push that fails after exporting costs minutes and leaves half its folders behind."""
    namespace, name = split_prefix(repo_prefix)
    if license is not None:
        check_license(license, "--license")
    if base_model is not None:
        problem = hub_id_problem(base_model)
        if problem:
            raise UserError(f"--base-model '{base_model}' is not a Hub model id: {problem}")
    folder = check_dry_run(dry_run)
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    metrics = read_metrics(run_dir)
    method = get_method(config.method)
    if mode is not None and not method.serve_modes:  # export would refuse it only after the first model
        raise UserError(f"--mode '{mode}' does not apply to {method.name}, which serves every preference by its own "
                        "rule (leave --mode out)")
    if mode is not None and mode not in method.serve_modes:
        raise UserError(f"--mode must be one of {', '.join(method.serve_modes)} for {method.name}, not '{mode}'")
    if mode is None and served:
        mode = "interpolate" if method.serve_modes else None
    wanted = [(entry["model"], entry["weights"], None) for entry in metrics["preferences"]]
    wanted += served_models(served, len(config.objectives), mode)
    check_repo_ids(repo_prefix, [DATA_SUFFIX, *(model for model, _, _ in wanted)])
    from_card = license is None
    license = license or base_model_license(config.model)
    if not license:
        raise UserError(f"the licence of the run's base model '{config.model.name_or_path}' is unknown (its card "
                        "states none here): give the models' licence with --license (e.g. apache-2.0)")
    if from_card:
        check_license(license, f"the licence the card of the run's base model '{config.model.name_or_path}' states "
                               "(give another with --license)")
    if dry_run is None and api is None:
        check_hub_online()
    return PushInputs(run_dir, namespace, name, config, metrics, method, license,
                      base_model or hub_base_model(config.model), wanted, folder)

HUB_NAME_MAX = 96
"""The longest name (and user or organisation) the Hub accepts in a repo id (huggingface_hub's validate_repo_id)."""

HUB_NAME = re.compile(r"[A-Za-z0-9._-]+")

HUB_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]*")
"""The shape of a Hub licence id (apache-2.0, mit, cc-by-nc-4.0, openrail++, other). huggingface_hub (2.4) ships no
list of the ids (its docs link the Hub's page, which an offline check cannot read), so the shape is what is
checked: a licence the Hub does not know is refused by it at upload, after the repos were created."""

def hub_id_problem(repo_id: str) -> str | None:
    """Why the Hub would refuse ``repo_id`` (``name`` or ``ORG/name``) as a repo id, as part of a sentence; None
    when it would not. The rules of huggingface_hub's ``validate_repo_id``, each said in words (its own messages
    are two sentences ending in the id), and that function itself as the last word."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    parts = repo_id.split("/")
    if len(parts) > 2:
        return f"it has {len(parts) - 1} '/', where a Hub id is NAME or ORG/name"
    for part in parts:
        if not part:
            return "it has an empty part"
        if not HUB_NAME.fullmatch(part):
            odd = next(c for c in part if not HUB_NAME.fullmatch(c))
            return f"'{odd}' is not one of the letters, digits, '-', '_' or '.' a Hub id is made of"
        if len(part) > HUB_NAME_MAX:
            return f"'{part}' has {len(part)} characters, where the Hub allows at most {HUB_NAME_MAX}"
        if part[0] in "-." or part[-1] in "-.":
            return f"'{part}' starts or ends with '-' or '.'"
    doubled = next((pair for pair in ("--", "..") if pair in repo_id), None)
    if doubled:
        return f"it holds '{doubled}'"
    if repo_id.endswith(".git"):
        return "it ends in '.git'"
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return "huggingface_hub refuses it as a repo id"
    return None

def check_repo_ids(repo_prefix: str, suffixes: Sequence[str]) -> None:
    """Every repo id ``repo_prefix-SUFFIX`` a push makes is one the Hub takes."""
    ids = [f"{repo_prefix}-{suffix}" for suffix in suffixes]
    for repo_id in ids:
        problem = hub_id_problem(repo_id)
        if problem is None:
            continue
        longest = max(len(suffix) + 1 for suffix in suffixes)
        if len(repo_id.split("/")[1]) > HUB_NAME_MAX:
            # the prefix's name leaves no room for its suffixes: say how long it may be, not only that it is too long
            raise UserError(f"--repo-prefix '{repo_prefix}' is too long: its repo '{repo_id}' has a name of "
                            f"{len(repo_id.split('/')[1])} characters, where the Hub allows at most {HUB_NAME_MAX} "
                            f"(give a name of at most {HUB_NAME_MAX - longest} characters)")
        raise UserError(f"--repo-prefix '{repo_prefix}' would make the repo '{repo_id}', which the Hub refuses: "
                        f"{problem}")

def check_license(license: str, what: str) -> None:
    """``license`` has the shape of a Hub licence id (see ``HUB_LICENSE``); ``what`` names where it came from."""
    if not HUB_LICENSE.fullmatch(license):
        raise UserError(f"{what} '{license}' is not a Hub licence id (lower-case letters, digits, '.', '-' or '+', "
                        "as apache-2.0, mit, cc-by-4.0 or other)")

def served_models(served: Sequence[Sequence[float]], num_objectives: int,
                  mode: str | None) -> list[tuple[str, list[float], str | None]]:
    """(repo suffix, weights, mode) of each ``--served`` preference: one sentence on an empty, wrong-length,
    non-finite, negative or all-zero one, and on one that is the same preference as an earlier one once both are
    normalised (``0.5,0.5`` and ``1,1`` would push one model twice)."""
    wanted, earlier = [], []
    for weights in served:
        values = [float(w) for w in weights]
        shown = ",".join(f"{w:g}" for w in values)
        if not values:
            raise UserError(f"--served '' is empty (0 weights): give the preference's {num_objectives} weights "
                            "separated by commas (0.3,0.7)")
        try:
            preference = check_serving_weights(values, num_objectives)
        except UserError as exc:
            # check_serving_weights says "weights (1.0, 2.0): <why>"; the option and its value replace the prefix
            raise UserError(f"--served {shown}: {str(exc).partition('): ')[2] or exc}") from None
        # Named by the preference served (normalised, as export serves it): 1,1 is w0.5_0.5, and no weight above 1
        # is written with an exponent's '+', which the Hub refuses in a repo name.
        suffix = f"w{'_'.join(f'{w:.3g}' for w in preference)}"
        for other_shown, other, other_suffix in earlier:
            if np.allclose(other, preference, rtol=0, atol=1e-12):
                raise UserError(f"--served {shown} is the same preference as --served {other_shown} once both are "
                                "normalised to sum to 1: give each preference once")
            if other_suffix == suffix:  # the repo is named by the weights to 3 significant digits
                raise UserError(f"--served {shown} and --served {other_shown} would both be the repo ending in "
                                f"-{suffix}: give preferences whose weights differ in their first 3 significant "
                                "digits")
        earlier.append((shown, preference, suffix))
        wanted.append((suffix, values, mode))
    return wanted

def check_dry_run(dry_run: str | Path | None) -> Path | None:
    """The ``--dry-run`` folder, checked: not empty text (which would be the working directory), not a file, new
    or empty, one that can be made, and not in a run directory (this run's or another's)."""
    if dry_run is None:
        return None
    if not str(dry_run).strip():
        raise UserError("--dry-run '' is empty: give a new or empty folder to build the repos in")
    folder = Path(dry_run).expanduser()
    inside = inside_run_directory(folder)
    if inside is not None:  # first: a run directory is never empty, but "not empty" would not say why it is wrong
        # the run's own files would be mixed with (or replaced by) the repos' folders
        where = "is" if inside.resolve() == folder.resolve() else "lies inside"
        raise UserError(f"--dry-run '{dry_run}' {where} the run directory '{inside}', whose files are the run's "
                        "own: give a new or empty folder outside it")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--dry-run '{dry_run}' is a file: give a new or empty folder to build the repos in")
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(f"--dry-run folder '{dry_run}' exists and is not empty: give a new or empty folder")
    parent = next((p for p in folder.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"--dry-run '{dry_run}' cannot be made: '{parent}' is a file")
    return folder

def check_hub_online() -> None:
    """A real push needs the Hub: huggingface_hub's offline mode refuses every request, which would be found only
    after every model was exported."""
    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        variable = next((v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(v)),
                        "HF_HUB_OFFLINE")
        raise UserError(f"push needs the Hub, and {variable}={os.environ.get(variable, '1')} switches it off: unset "
                        f"{variable}, or give --dry-run DIR to build the repos' folders without the Hub")

def split_prefix(repo_prefix: str) -> tuple[str, str]:
    """(ORG, name) of ``--repo-prefix ORG/name``; one sentence when it is not that."""
    parts = repo_prefix.split("/")
    if len(parts) != 2 or not all(REPO_NAME.fullmatch(part) for part in parts):
        raise UserError(f"--repo-prefix must be ORG/name (a Hub user or organisation, a name of letters, digits, "
                        f"'-', '_' or '.'), not '{repo_prefix}'")
    return parts[0], parts[1]

def base_model_license(model_config) -> str | None:
    """The ``license`` the base model's card states: a local folder's README.md, a Hub model's card as the local
    Hub cache holds it (nothing is downloaded), the embedded default's known licence; None when none is known."""
    from huggingface_hub import metadata_load

    name = model_config.name_or_path
    if name == EMBEDDED_DEFAULT:
        return EMBEDDED_BASE_LICENSE
    if is_local_path(name):
        card = Path(name).expanduser() / CARD_FILE
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, CARD_FILE, revision=model_config.revision)
        card = Path(cached) if isinstance(cached, str) else None
    if card is None or not card.is_file():
        return None
    license = (metadata_load(card) or {}).get("license")
    return license if isinstance(license, str) and license else None

def hub_base_model(model_config) -> str | None:
    """The Hub id a card on the Hub names as the run's base model: a Hub base as it is, the embedded default's
    origin; None for a local folder (the Hub knows no local path)."""
    name = model_config.name_or_path
    if name == EMBEDDED_DEFAULT:
        return EMBEDDED_BASE_HUB_ID
    return None if is_local_path(name) else name
