import pytest
import yaml

from paretohqd.config import load_config, parse_overrides
from paretohqd.errors import UserError

BASE = ["--data.source", "x.jsonl", "--objectives", "[{name: a}, {name: b}]"]


def test_defaults_yaml_and_overrides_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "d.jsonl"}, "objectives": [{"name": "a"}, {"name": "b"}],
                                    "select": {"k": 10, "metric": "angle"}}))
    config = load_config(path, ["--select.k", "64", "--objectives.1.batch_size=3"])
    assert config.select.k == 64  # command line beats YAML
    assert config.select.metric == "angle"  # YAML beats default
    assert config.select.normalisation == "minmax"  # default
    assert config.objectives[1].batch_size == 3
    assert config.objective_names == ["a", "b"]


def test_override_values_are_yaml_typed():
    assert parse_overrides(["--a.b", "true", "--c=[1, 2]", "--d", "0.5", "--e", "text"]) == [
        ("a.b", True), ("c", [1, 2]), ("d", 0.5), ("e", "text")]


@pytest.mark.parametrize("extra, message", [
    (["--select.kk", "3"], "unknown key 'select.kk'"),
    (["--selectt.k", "3"], "unknown key 'selectt'"),
    (["--select.k", "abc"], "select.k must be an integer"),
    (["--select.k", "0"], "select.k must be at least 1"),
    (["--select.metric", "cosine"], "select.metric is 'cosine'; it must be one of"),
    (["--objectives.5.batch_size", "3"], "not an index of a list of 2"),
    (["--objectives.1.name", "a"], "declared twice"),
    (["--objectives.0.type", "hf"], "has type hf but no 'model'"),
    (["--select.robust_quantiles", "[0.9, 0.1]"], "robust_quantiles"),
    (["--score.progress", "maybe"], "must be true or false"),
    (["--select.k"], "has no value"),
])
def test_bad_config_names_the_key(extra, message):
    with pytest.raises(UserError, match=message):
        load_config(None, BASE + extra)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="no objectives"):
        load_config(None, ["--data.source", "x"])


def test_shipped_recipes_validate():
    """Every recipe loads and validates, including the Hub-scale ones that cannot run here: one per task and method,
    each with its method's settings."""
    from paretohqd.cli import recipe_path
    from paretohqd.methods import METHODS

    recipes = sorted(recipe_path("demo").parent.rglob("*.yaml"))
    assert {p.stem for p in (recipe_path("demo").parent / "hh_rlhf").glob("*.yaml")} >= set(METHODS)
    for path in recipes:
        config = load_config(path)
        assert len(config.objectives) == 2, path
        assert path.stem in ("demo", "local", "cpu") or config.method == path.stem, path
    paper = load_config(recipe_path("hh_rlhf/paretohqd"))
    assert paper.model.name_or_path == "meta-llama/Llama-2-7b-hf"
    assert paper.train.sft["max_steps"] == 200 and paper.stage2.sft["max_steps"] == 100
    assert paper.select.k == 100 and paper.stage2.num_prompts == 10000 and paper.train.lora["r"] == 64
    assert [o.model for o in paper.objectives] == ["Ray2333/gpt2-large-harmless-reward_model",
                                                  "Ray2333/gpt2-large-helpful-reward_model"]
    for method in ("ric", "sft", "soups", "morlhf", "modpo"):  # one task: the same data, rewards, policy, protocol
        other = load_config(recipe_path(f"hh_rlhf/{method}"))
        assert (other.data, other.objectives, other.model, other.evaluate) == (paper.data, paper.objectives,
                                                                              paper.model, paper.evaluate)
    assert load_config(recipe_path("hh_rlhf/ric")).ric.offline.sft["max_steps"] == 20000
    assert load_config(recipe_path("scitldr/paretohqd")).data.source == {"path": "allenai/scitldr",
                                                                        "name": "Abstract", "split": "train"}


@pytest.mark.parametrize("extra, message", [
    (["--train.stage1_steps", "-1"], "unknown key 'train.stage1_steps': it is now 'train.sft.max_steps'"),
    (["--train.per_device_batch_size", "0"], "it is now 'train.sft.per_device_train_batch_size'"),
    (["--evaluate.sampling.top_p", "1.5"], "top_p in"),
    (["--stage2.num_prompts", "0"], "num_prompts must be at least 1"),
    (["--data.heldout_fraction", "1.0"], "heldout_fraction must be in"),
    (["--train.use_lora", "yes please"], "must be true or false"),
])
def test_bad_training_config(extra, message):
    with pytest.raises(UserError, match=message):
        load_config(None, BASE + extra)


@pytest.mark.parametrize("extra, message", [
    (["--train.lora_dropout", "1.5"], "it is now 'train.lora.lora_dropout'"),
    (["--train.stage2_learning_rate", "-1"], "it is now 'stage2.sft.learning_rate'"),
    (["--model.max_prompt_length", "0"], "model.max_prompt_length must be at least 1"),
    (["--select.k", "5e-4"], "select.k must be an integer"),
    (["--evaluate.sampling.temperature", "nan"], "evaluate.sampling.temperature must be a finite number"),
    (["--evaluate.collapse.ngram", "0"], "collapse thresholds"),
    (["--evaluate.collapse.min_distinct_2", "0.5"], "unknown key 'evaluate.collapse.min_distinct_2'"),
    (["--evaluate.reference_point", "[0]"], "reference_point has 1 values but there are 2 objectives"),
])
def test_more_bad_settings(extra, message):
    with pytest.raises(UserError, match=message):
        load_config(None, BASE + extra)


def test_values_yaml_1_1_reads_as_strings_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: d.jsonl}\nobjectives: [{name: a}]\ntrain: {sft: {learning_rate: 5e-4}}\n")
    assert load_config(path).train.sft["learning_rate"] == 5e-4


def test_duplicate_yaml_key_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: a.jsonl}\ndata: {source: b.jsonl}\nobjectives: [{name: a}]\n")
    with pytest.raises(UserError, match="duplicate key data"):
        load_config(path)


def test_pass_through_mappings_merge_over_our_defaults():
    config = load_config(None, [*BASE, "--train.sft.optim", "adafactor", "--train.lora.use_rslora", "true"])
    assert config.train.sft["optim"] == "adafactor" and config.train.sft["max_steps"] == 200
    assert config.train.lora["use_rslora"] is True and config.train.lora["r"] == 16


def test_das_dennis_default_partitions_per_number_of_objectives_are_reachable():
    from paretohqd.pareto import resolve_grid

    four = ["--objectives", "[{name: a}, {name: b}, {name: c}, {name: d}]"]
    config = load_config(None, ["--data.source", "x.jsonl", *four])
    prefs = config.preferences
    assert prefs.n_partitions is None
    assert len(resolve_grid(prefs.grid, 4, prefs.n_points, prefs.n_partitions, prefs.weights)) == 20  # 3 partitions
    assert len(resolve_grid("das-dennis", 5, 11, None)) == 15  # 2 partitions
    assert len(resolve_grid("das-dennis", 4, 11, 4)) == 35


def test_resolved_config_round_trips(tmp_path):
    from paretohqd.config import dump_yaml

    config = load_config(None, [*BASE, "--select.k", "7", "--train.sft.learning_rate", "3e-4"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path) == config
