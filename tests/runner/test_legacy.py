"""Runs written before the algorithm contract (flat configs, one-array carries) still resume."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import serialization

from quickstudy import runner
from quickstudy.algorithms import legacy, registry
from quickstudy.algorithms.rl2 import RL2_PPO, RL2Config
from quickstudy.errors import ConfigError
from quickstudy.tracking import latest_checkpoint, save_checkpoint

CONFIG = RL2Config(
    total_steps=480 * 2,
    num_envs=8,
    hidden_size=16,
    cell="lstm",
    critic_hidden_size=8,
    ppo=dataclasses.replace(RL2_PPO, num_minibatches=2),
)
SETTINGS = runner.RunSettings(seed=3, chunk_updates=2, checkpoint_every=1)


def _to_old_layout(run_dir):
    """Rewrites a run's config.json and latest checkpoint the way quickstudy 717000b wrote them."""
    record = json.loads((run_dir / "config.json").read_text())
    config = record["config"]
    flat = {k: v for k, v in config.items() if k not in ("ppo", "trust_region", "learner")}
    newer = ("normalize_advantages", "strided_minibatches", "split_networks")  # not at 717000b
    flat.update({k: v for k, v in config["ppo"].items() if k not in newer})
    flat.update(next_obs_coef=0.0, reward_target="observed", head_activation="relu")
    record["config"] = flat
    (run_dir / "config.json").write_text(json.dumps(record))
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    run = runner.open_run(run_dir)
    state = runner.load_state(run, ckpt)
    saved = serialization.to_state_dict(jax.device_get(state))
    carry = saved["rollout"].pop("carry")
    packed = [np.concatenate([carry[k]["0"], carry[k]["1"]], -1) for k in ("core", "critic_core")]
    saved["rollout"]["hidden"] = np.concatenate(packed, -1)
    saved["rollout"]["trial_return"] = saved["rollout"].pop("episode_return")
    saved["key"] = jax.random.key_data(state.key)
    for f in ckpt.parent.iterdir():
        f.unlink()
    save_checkpoint(ckpt.parent, int(state.update), saved)
    return flat


def test_an_old_run_resumes_bit_exactly(tmp_path):
    full = runner.train(runner.create_run("rl2", "bandit-k5-n10", CONFIG, SETTINGS, tmp_path / "a"))
    part = runner.create_run("rl2", "bandit-k5-n10", CONFIG, SETTINGS, run_dir=tmp_path / "b")
    runner.train(part, stop_after_updates=5)
    flat = _to_old_layout(tmp_path / "b")
    assert "learning_rate" in flat and "ppo" not in flat
    resumed = runner.train(runner.open_run(tmp_path / "b"))
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    rows = [(tmp_path / d / "metrics.jsonl").read_text() for d in ("a", "b")]
    assert rows[0] == rows[1]


def test_an_old_run_with_a_removed_knob_is_refused_by_name(tmp_path):
    run = runner.create_run("rl2", "bandit-k5-n10", CONFIG, SETTINGS, run_dir=tmp_path / "r")
    runner.train(run, stop_after_updates=2)
    _to_old_layout(tmp_path / "r")
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    record["config"]["next_obs_coef"] = 1.0
    (tmp_path / "r" / "config.json").write_text(json.dumps(record))
    with pytest.raises(
        ConfigError, match=rf"config.json.*next_obs_coef=1.0.*{legacy.LAST_FLAT_COMMIT}"
    ):
        runner.open_run(tmp_path / "r")


def test_a_flat_maml_rl_config_reads_into_the_nested_trust_region():
    spec = registry.get("maml-rl")
    flat = json.loads(json.dumps(dataclasses.asdict(spec.config_cls())))
    flat.update(flat.pop("trust_region"), max_kl=0.02)
    config = spec.config_from_record(flat)
    default = spec.config_cls()
    trust = dataclasses.replace(default.trust_region, max_kl=0.02)
    assert config == dataclasses.replace(default, trust_region=trust)
