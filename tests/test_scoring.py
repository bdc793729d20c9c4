import numpy as np
import pandas as pd
import pytest

from paretohqd.config import ObjectiveConfig
from paretohqd.errors import UserError
from paretohqd.rewards import build_objective
from paretohqd.rewards.builtin import FunctionObjective
from paretohqd.rewards.scoring import check_batch_invariance, consistency_tolerance, score_frame


def score_samples(samples, objectives, batch_sizes, cache_root, shard_size, **_):
    """Score with each objective identified by its name (these tests build objectives by hand)."""
    return score_frame(samples, objectives, [{"test": o.name} for o in objectives], batch_sizes, cache_root,
                       shard_size), {}

WORDS = ["the", "cat", "sat", "on", "mat", "is", "good", "bad", "kind", "rude", "help", "you", "i", "can", "not",
         "will", "yes", "no", "please", "thanks"]


def make_samples(n, seed=0):
    rng = np.random.default_rng(seed)
    prompts = [" ".join(rng.choice(WORDS, rng.integers(2, 9))) for _ in range(n)]
    responses = [" ".join(rng.choice(WORDS, rng.integers(1, 15))) for _ in range(n)]
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "prompt": prompts, "response": responses,
                         "rating": rng.normal(size=n)})


def hf_objective(path, **overrides):
    config = ObjectiveConfig(name="rm", type="hf", model=str(path), batch_size=8, **overrides)
    return build_objective(config)


def test_hf_reward_model_is_batch_and_padding_invariant(tiny_reward_model):
    objective = hf_objective(tiny_reward_model)
    samples = make_samples(24)
    # A tokenizer without a pad token gets one; padding goes on the right.
    assert objective.tokenizer.pad_token is not None and objective.tokenizer.padding_side == "right"
    assert objective.tokenizer.pad_token != objective.tokenizer.eos_token
    one_by_one = np.array([objective.score(samples.iloc[[i]])[0] for i in range(len(samples))])
    for batch_size in (3, 8, 24):
        table, _ = score_samples(samples, [objective], [batch_size], cache_root=_fresh_dir(), shard_size=10,
                                 show_progress=False)
        np.testing.assert_allclose(table["rm"].to_numpy(), one_by_one, atol=1e-5)
    assert check_batch_invariance(objective, samples, 8, 8, 1e-4) < 1e-4


def test_input_formats_differ_and_logit_index_is_checked(tiny_reward_model):
    samples = make_samples(6)
    pair = hf_objective(tiny_reward_model).score(samples)
    response_only = hf_objective(tiny_reward_model, input_format="response").score(samples)
    assert not np.allclose(pair, response_only)
    templated = hf_objective(tiny_reward_model, input_format="template", template="{response} {eos} {prompt}")
    reversed_pair = hf_objective(tiny_reward_model, input_format="reversed_pair")
    assert templated.score(samples).shape == reversed_pair.score(samples).shape == (6,)
    with pytest.raises(UserError, match="logit_index 3 is out of range"):
        hf_objective(tiny_reward_model, logit_index=3)


def test_missing_reward_model_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="cannot load reward model"):
        hf_objective(tmp_path / "nothing-here")


def test_batch_dependent_objective_is_caught():
    # Scores that leak the batch (here: centred per batch) are what padding bugs look like.
    leaky = FunctionObjective("leaky", lambda b: b["rating"].to_numpy() - b["rating"].mean())
    with pytest.raises(UserError, match="depend on batching or padding"):
        check_batch_invariance(leaky, make_samples(10), 4, 4, 1e-6)


def test_the_self_check_tolerates_half_precision_rounding_and_still_names_padding_faults(tiny_reward_model):
    """bf16 scoring batched and alone differ by about one unit in the last place (2^-7 relative); a padding fault
    moves scores by far more. The default tolerance follows the dtype; an error it causes names the dtype."""
    rounding = FunctionObjective("bf16ish", lambda b: b["rating"].to_numpy() * (1 + 2.0 ** -8 * (len(b) > 1)))
    samples = make_samples(10)
    assert check_batch_invariance(rounding, samples, 4, 4, consistency_tolerance("bfloat16"), "bfloat16") > 0
    with pytest.raises(UserError, match="depend on batching or padding"):  # float32 has no such excuse
        check_batch_invariance(rounding, samples, 4, 4, consistency_tolerance("float32"), "float32")
    with pytest.raises(UserError, match=r"what bfloat16 rounding can make \(score in float32, or raise "
                                        r"score\.consistency_tolerance above 0\.001\)"):
        check_batch_invariance(rounding, samples, 4, 4, 1e-3, "bfloat16")  # a tolerance given too tight
    assert consistency_tolerance("bfloat16", 0.5) == 0.5 and consistency_tolerance("float32") == 1e-3

    objective = hf_objective(tiny_reward_model, dtype="bfloat16")
    objective.tokenizer.padding_side = "left"
    with pytest.raises(UserError, match="depend on batching or padding"):
        check_batch_invariance(objective, make_samples(12), 8, 8, consistency_tolerance("bfloat16"), "bfloat16")


class CountingObjective:
    """Counts how many samples it scored; fails after ``fail_after`` calls to mimic a crash."""

    def __init__(self, fail_after=None):
        self.name = "count"
        self.scored = 0
        self.calls = 0
        self.fail_after = fail_after

    def score(self, batch):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        self.scored += len(batch)
        return batch["response"].str.len().to_numpy(dtype=float)


def test_interrupted_scoring_resumes_without_rescoring(tmp_path):
    samples = make_samples(50)
    crashing = CountingObjective(fail_after=3)  # batches of 5, shards of 10: dies inside the second shard
    with pytest.raises(RuntimeError):
        score_samples(samples, [crashing], [5], tmp_path, shard_size=10, consistency_check=0, show_progress=False)
    assert len(list(tmp_path.rglob("*.npy"))) == 1  # the first shard of 10 was saved, under its content key
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file left behind
    resumed = CountingObjective()
    table, _ = score_samples(samples, [resumed], [5], tmp_path, shard_size=10, consistency_check=0,
                             show_progress=False)
    assert resumed.scored == 40  # the finished shard of 10 was not rescored
    fresh, _ = score_samples(samples, [CountingObjective()], [5], tmp_path / "fresh", shard_size=10,
                             consistency_check=0, show_progress=False)
    np.testing.assert_array_equal(table["count"], fresh["count"])
    again = CountingObjective()
    score_samples(samples, [again], [5], tmp_path, shard_size=10, consistency_check=0, show_progress=False)
    assert again.scored == 0
    edited = samples.copy()
    edited.loc[23, "response"] = "an edited reply"
    after_edit = CountingObjective()
    score_samples(edited, [after_edit], [5], tmp_path, shard_size=10)
    assert after_edit.scored == 10  # only the shard holding the edited row is scored again


def test_nan_scores_are_rejected_with_the_sample():
    samples = make_samples(5)
    samples.loc[3, "rating"] = np.nan
    objective = build_objective(ObjectiveConfig(name="r", type="column", column="rating"))
    with pytest.raises(UserError, match="returned NaN for sample 's3' \\(row 3\\)"):
        score_samples(samples, [objective], [2], _fresh_dir(), shard_size=4, consistency_check=0,
                      show_progress=False)


def test_callable_column_and_builtin_objectives(tmp_path):
    samples = make_samples(6)
    length = build_objective(ObjectiveConfig(name="len", type="callable",
                                             callable="tests.helpers_objectives:response_length"))
    assert length.score(samples).tolist() == samples["response"].str.len().tolist()
    column = build_objective(ObjectiveConfig(name="rating", type="column", column="rating"))
    np.testing.assert_array_equal(column.score(samples), samples["rating"].to_numpy())
    concise = build_objective(ObjectiveConfig(name="conciseness"))
    assert concise.score(samples).tolist() == [-len(r.split()) for r in samples["response"]]
    clean = build_objective(ObjectiveConfig(name="non_profanity"))
    polite = pd.DataFrame({"prompt": ["x", "x"], "response": ["Thank you, have a nice day.", "You stupid idiot."]})
    scores = clean.score(polite)
    assert scores[0] > 0.5 > scores[1]
    with pytest.raises(UserError, match="unknown objective 'humour'"):
        build_objective(ObjectiveConfig(name="humour"))
    with pytest.raises(UserError, match="cannot import module"):
        build_objective(ObjectiveConfig(name="x", type="callable", callable="no_such_module:f"))


def _fresh_dir():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp())


def test_invariance_check_catches_left_padding_on_a_real_model(tiny_reward_model):
    objective = hf_objective(tiny_reward_model)
    objective.tokenizer.padding_side = "left"  # shifts absolute positions of a GPT-2: scores change with padding
    with pytest.raises(UserError, match="depend on batching or padding"):
        check_batch_invariance(objective, make_samples(12), 8, 8, 1e-4)


def test_nan_in_the_self_check_names_the_sample():
    samples = make_samples(4)
    samples.loc[2, "rating"] = np.nan
    objective = build_objective(ObjectiveConfig(name="r", type="column", column="rating"))
    with pytest.raises(UserError, match="returned NaN for sample 's2'"):
        check_batch_invariance(objective, samples, 8, 4, 1e-6)


def test_self_check_really_encodes_twice_for_cached_embeddings(monkeypatch):
    from paretohqd.rewards import embeddings

    calls = []
    real = embeddings.load_minilm

    class Counting:
        def __init__(self, model):
            self.model = model

        def encode(self, texts, **kwargs):
            calls.append(len(texts))
            return self.model.encode(texts, **kwargs)

    monkeypatch.setattr(embeddings, "load_minilm", lambda: Counting(real()))
    objective = build_objective(ObjectiveConfig(name="relevance"))
    check_batch_invariance(objective, make_samples(3), 3, 3, 1e-3)
    assert len(calls) >= 2 + 2 * 3  # one batched pass (context + response), then each sample alone


def test_embeddings_do_not_depend_on_batch_composition_or_threads():
    import torch

    from paretohqd.rewards.embeddings import embed, embedding_cache_disabled

    texts = [f"a reply about topic {i}, " * (1 + i % 4) for i in range(12)]
    threads = torch.get_num_threads()
    try:
        with embedding_cache_disabled():
            torch.set_num_threads(2)
            together = embed(texts)
            torch.set_num_threads(1)
            others = embed(["something else entirely", *texts[6:], "and a long " * 30])[1:7]
    finally:
        torch.set_num_threads(threads)
    assert together.dtype == np.float32 and together.shape == (12, 384)
    np.testing.assert_array_equal(together[6:], others)  # to the bit
    assert torch.get_num_threads() == threads


def test_the_self_check_unit_reads_the_tolerance_of_its_objectives_dtype(tiny_policy, tmp_path):
    from paretohqd.config import load_config
    from paretohqd.methods import get_method
    from paretohqd.pipeline import build_plan

    from .test_pipeline import write_run_config

    config = load_config(write_run_config(tmp_path, tiny_policy))
    config.objectives[0].dtype = "bfloat16"
    checks = {u.name: u.settings["tolerance"] for u in build_plan(get_method("paretohqd"), config).units
              if u.kind == "score_check"}
    first, second = (f"score/{o.name}/check" for o in config.objectives)
    assert checks[first] == 2.0 ** -5 and checks[second] == 1e-3  # float32's, as before: its key is unchanged
    config.score.consistency_tolerance = 0.01
    assert {u.settings["tolerance"] for u in build_plan(get_method("paretohqd"), config).units
            if u.kind == "score_check"} == {0.01}
