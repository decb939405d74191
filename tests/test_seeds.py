"""Seeds of one configuration: a vmap-ed group equals separate runs, resumes, and aggregates."""

import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from support import leaves

from quickstudy import runner, seeds
from quickstudy.algorithms import registry
from quickstudy.errors import CheckpointError, ConfigError
from quickstudy.evaluation.aggregate import iqm, seed_mean, stratified_iqm
from quickstudy.tracking import list_checkpoints, make_run_dir, read_metrics
from quickstudy.types import Algorithm

TASK = "bandit-k5-n10"


def _config(updates=4):
    spec = registry.get("rl2")
    return spec.config(TASK, None, {"total_steps": updates * 1280})


def _group(path, n=2, updates=4, chunk=2, **kw):
    settings = runner.RunSettings(chunk_updates=chunk, checkpoint_every=1, **kw)
    return seeds.create_group("rl2", TASK, _config(updates), settings, n, "vmap", path)


def test_a_vmapped_group_trains_each_seed_as_its_own_run_would(tmp_path):
    group = _group(tmp_path / "group", n=2, updates=3)
    assert seeds.train_group(group) == {}
    record = json.loads((tmp_path / "group" / "seeds.json").read_text())
    assert record["seeds"] == [0, 1] and record["mode"] == "vmap"
    for i, run in enumerate(seeds.open_group(tmp_path / "group").runs):
        alone = runner.create_run(
            "rl2", TASK, _config(3), runner.RunSettings(seed=i), run_dir=tmp_path / f"alone{i}"
        )
        expected = runner.train(alone)
        got, done = runner.restore_latest(runner.open_run(run.path))  # a seed opens alone
        assert done == 3 and [r["update"] for r in read_metrics(run.path / "metrics.jsonl")] == [
            1,
            2,
            3,
        ]
        for a, b in zip(leaves(got.params), leaves(expected.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_an_interrupted_group_resumes_to_the_same_parameters(tmp_path):
    full = _group(tmp_path / "full", updates=4)
    seeds.train_group(full)
    part = _group(tmp_path / "part", updates=4)
    seeds.train_group(part, stop_after_updates=2)
    reopened = seeds.open_group(tmp_path / "part")
    assert seeds.restore_group(reopened)[2] == 2
    seeds.train_group(reopened)
    for a, b in zip(full.runs, reopened.runs, strict=True):
        x, y = runner.restore_latest(a)[0], runner.restore_latest(b)[0]
        for u, v in zip(leaves(x), leaves(y), strict=True):
            np.testing.assert_array_equal(u, v)


def test_seeds_at_different_updates_are_named_with_the_way_out(tmp_path):
    group = _group(tmp_path / "g", updates=4)
    seeds.train_group(group, stop_after_updates=2)
    runner.train(group.runs[1], stop_after_updates=4)
    with pytest.raises(CheckpointError, match="seed-0 at update 2, seed-1 at update 4"):
        seeds.restore_group(seeds.open_group(tmp_path / "g"))


def test_group_evaluation_aggregates_each_seeds_meta_test(tmp_path):
    group = _group(tmp_path / "g", n=3, updates=1, eval_tasks=20)
    seeds.train_group(group)
    summary = seeds.evaluate_group(group)
    own = [json.loads((r.path / "eval" / "summary.json").read_text()) for r in group.runs]
    trial = [s["trial_return"]["mean"] for s in own]
    assert summary["trial_return"]["per_seed"] == trial
    assert summary["trial_return"]["mean"] == pytest.approx(np.mean(trial))
    low, high = summary["trial_return"]["ci95_low"], summary["trial_return"]["ci95_high"]
    assert min(trial) <= low <= np.mean(trial) <= high <= max(trial)
    assert (tmp_path / "g" / "eval" / "adaptation.png").stat().st_size > 0


def test_the_default_mode_is_processes_on_a_multicore_cpu_and_for_host_stepping(monkeypatch):
    jittable = registry.build("rl2", TASK, _config())
    host = registry.build("rl2", "nav2d-numpy", registry.get("rl2").config("nav2d-numpy"))
    assert seeds.default_mode(host) == "processes"
    monkeypatch.setattr(seeds.parallel, "available_cores", lambda: [0, 1])
    assert seeds.default_mode(jittable) == "processes"
    monkeypatch.setattr(seeds.parallel, "available_cores", lambda: [0])
    assert seeds.default_mode(jittable) == "vmap"


def test_bad_groups_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"seeds must be in \[2"):
        _group(tmp_path / "one", n=1)
    with pytest.raises(ConfigError, match="--seed-mode processes"):
        seeds.create_group(
            "rl2", "nav2d-numpy", _config(), runner.RunSettings(), 2, "vmap", tmp_path / "h"
        )
    with pytest.raises(ConfigError, match="seed mode must be one of"):
        seeds.create_group(
            "rl2", TASK, _config(), runner.RunSettings(), 2, mode="threads", run_dir=tmp_path / "t"
        )
    assert not any(tmp_path.iterdir())


class _State(NamedTuple):
    params: dict
    update: jax.Array


def _toy(total=10):
    """``w <- 1.01 w``; a seed whose ``w`` starts above 1.5 turns NaN at update 7."""

    def update(state):
        u = state.update + 1
        w = state.params["w"] * 1.01
        w = jnp.where((u >= 7) & (w[0] > 1.5), w * jnp.nan, w)
        return _State({"w": w}, u), {"loss": jnp.sum(w), "ret": u * 1.0}

    return Algorithm(
        config=None,
        tasks=None,
        init=lambda key: _State({"w": jnp.ones(3)}, jnp.zeros((), jnp.int32)),
        update=update,
        meta_test=None,
        num_updates=total,
        steps_per_update=1,
        jittable=True,
        progress=("ret", "ret"),
        default_points=1,
    )


def test_a_diverged_seed_drops_out_and_the_others_finish(tmp_path):
    algo, settings = _toy(), runner.RunSettings(chunk_updates=3, checkpoint_every=1)
    runs = [
        runner.Run(make_run_dir(tmp_path, "toy", "toy", tmp_path / f"s{i}"), "toy", "toy",
                   settings, algo)
        for i in range(2)
    ]  # fmt: skip
    state = _State({"w": jnp.array([[1.0] * 3, [2.0] * 3])}, jnp.zeros(2, jnp.int32))
    final, failures = runner.train_stacked(runs, state, 0)
    assert list(failures) == [1] and "non-finite loss at update 7" in failures[1]
    assert "update 6" in (runs[1].path / "diverged.txt").read_text()
    assert [u for u, _ in list_checkpoints(runs[1].path / "checkpoints")] == [3, 6]
    assert [u for u, _ in list_checkpoints(runs[0].path / "checkpoints")][-1] == 10
    np.testing.assert_allclose(np.asarray(final.params["w"][0]), 1.01**10, rtol=1e-5)
    assert len(read_metrics(runs[1].path / "metrics.jsonl")) == 9  # its last chunk is logged


def test_iqm_and_intervals_agree_with_their_definitions():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    x = np.random.default_rng(0).normal(size=(6, 4))
    assert iqm(x) == pytest.approx(stats.trim_mean(x.ravel(), 0.25))
    agg = stratified_iqm(x)
    assert agg["ci_low"] < agg["iqm"] < agg["ci_high"] and (agg["seeds"], agg["tasks"]) == (6, 4)
    wider = stratified_iqm(np.concatenate([x, x * 5]))
    assert wider["ci_high"] - wider["ci_low"] > agg["ci_high"] - agg["ci_low"]
    one = seed_mean([3.0])
    assert one["mean"] == 3.0 and one["ci_low"] is None
    assert seed_mean([2.0, 2.0, 2.0])["ci_low"] == pytest.approx(2.0)
