"""TRL's command-line and Python habits: both spellings of every multi-word flag, `plan` and `status` that run
nothing, overrides as mappings, objectives given as Python functions."""

import argparse
import json
import shutil

import pytest

from paretohqd.cli import build_parser, main
from paretohqd.config import load_config
from paretohqd.errors import UserError

from .test_pipeline import write_run_config


def long_options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from long_options(sub)
        else:
            yield parser.prog, set(action.option_strings)


def test_every_multi_word_flag_takes_dashes_and_underscores():
    checked = 0
    for prog, names in long_options(build_parser()):
        for name in names:
            if name.startswith("--") and ("-" in name[2:] or "_" in name[2:]):
                other = "--" + (name[2:].replace("-", "_") if "-" in name[2:] else name[2:].replace("_", "-"))
                assert other in names, f"{prog}: {name} without {other}"
                checked += 1
    assert checked >= 10
    parser = build_parser()
    for spelling in ("--output-dir", "--output_dir"):
        assert parser.parse_args(["demo", spelling, "runs/x"]).output_dir == "runs/x"
    for spelling in ("--output", "--output_dir", "--output-dir"):
        assert parser.parse_args(["export", "RUN", "--weights", "1,0", spelling, "out"]).output == "out"
        assert parser.parse_args(["compare", "a", "b", spelling, "c"]).output == "c"
    assert parser.parse_args(["generate", "RUN", "--prompt-column", "q"]).prompt_column == "q"


def test_config_overrides_take_both_spellings(tmp_path):
    path = write_run_config(tmp_path, tmp_path)
    assert load_config(path, ["--train.sft.max-steps", "7", "--output-dir", "elsewhere"]).output_dir == "elsewhere"
    assert load_config(path, ["--train.sft.max-steps", "7"]).train.sft["max_steps"] == 7


def test_plan_and_status_say_where_a_run_stands_without_running_anything(served_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(served_run, run)  # served_run is shared: a copy is changed here
    assert main(["status", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"{len(lines) - 1} done of {len(lines) - 1} units")

    manifest = json.loads((run / "manifest.json").read_text())
    name = next(n for n, e in manifest["units"].items() if e["kind"] == "sft")
    manifest["units"][name]["status"] = "running"  # what a killed run leaves: no heartbeat beats for it
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(["status", str(run), "--keys"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(name + " "))
    assert "interrupted" in row and manifest["units"][name]["key"] in row

    config = run / "config.resolved.yaml"
    before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    assert main(["plan", str(config), "--output_dir", str(run), "--select.k", "5"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert "stale" in summary and "done" in summary  # selection and everything after it; not the scores
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == before  # nothing written

    fresh = tmp_path / "fresh"
    assert main(["plan", str(config), "--output_dir", str(fresh), "--command", "score"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.endswith("to run of " + summary.split(" of ")[-1]) and not fresh.exists()


def test_python_overrides_as_mappings_and_objectives_as_functions(tmp_path):
    from .helpers_objectives import vowel_share

    path = write_run_config(tmp_path, tmp_path)
    config = load_config(path, select={"k": 9}, **{"train.sft.max_steps": 2})
    assert config.select.k == 9 and config.train.sft["max_steps"] == 2
    assert config.train.sft["learning_rate"] == 0.05  # a section's mapping changes only what it names
    assert load_config(path, {"select.k": 4, "stage2": {"num_prompts": 3}}).stage2.num_prompts == 3
    objectives = [{"name": "brevity", "builtin": "conciseness"},
                  {"name": "vowels", "type": "callable", "callable": vowel_share}]
    assert load_config(path, objectives=objectives).objectives[1].callable == "tests.helpers_objectives:vowel_share"
    with pytest.raises(UserError, match="cannot be imported again by name"):
        load_config(path, objectives=[objectives[0], {**objectives[1], "callable": lambda prompts, replies: replies}])
    with pytest.raises(UserError, match="did you mean 'select'"):
        load_config(path, selct={"k": 3})
