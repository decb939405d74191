"""The policy's and the critic's gradients on two devices give one device's training."""

import textwrap

import pytest
from support import run_on_two_devices

from quickstudy.algorithms import registry
from quickstudy.errors import ConfigError

# Runs in a fresh interpreter that sees two devices (support.run_on_two_devices).
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from quickstudy import runner
    from quickstudy.algorithms import registry
    out = {"devices": len(jax.devices())}
    base = {"total_steps": 3 * 16 * 10, "num_envs": 16, "hidden_size": 16,
            "critic_hidden_size": 8, "task_critic": True, "reward_coef": 1.0}
    for clip in ("global", "per-network"):
        finals, metrics = {}, {}
        for split in (False, True):
            ppo = {"num_minibatches": 2, "split_networks": split,
                   "clip_per_network": clip == "per-network"}
            config = registry.get("rl2").config("bandit-k5-n10", overrides={**base, "ppo": ppo})
            settings = runner.RunSettings(seed=3, chunk_updates=3)
            run = runner.create_run("rl2", "bandit-k5-n10", config, settings,
                                    run_dir=f"{sys.argv[1]}/{clip}-{split}")
            finals[split] = runner.train(run)
            rows = [json.loads(x) for x in open(f"{sys.argv[1]}/{clip}-{split}/metrics.jsonl")]
            metrics[split] = rows[-1]
        a = [np.asarray(x) for x in jax.tree.leaves(finals[False].params)]
        b = [np.asarray(x) for x in jax.tree.leaves(finals[True].params)]
        out[clip] = {
            "max_rel": max(float(np.max(np.abs(x - y) / (np.abs(x) + 1e-3))) for x, y in zip(a, b)),
            "moved": max(float(np.max(np.abs(x - y))) for x, y in zip(
                a, jax.tree.leaves(registry.build("rl2", "bandit-k5-n10", config)
                                   .init(jax.random.key(3)).params))),
            "metrics": {k: (metrics[False][k], metrics[True][k])
                        for k in ("policy_loss", "value_loss", "entropy", "reward_loss")
                        if k in metrics[False]},
            "replicated": sorted({str(x.sharding) for x in jax.tree.leaves(finals[True].params)}),
        }
    try:
        runner.create_run("rl2", "bandit-k5-n10", config, runner.RunSettings(devices=2),
                          run_dir=f"{sys.argv[1]}/with-devices")
        out["with_devices"] = "accepted"
    except Exception as err:
        out["with_devices"] = f"{type(err).__name__}: {err}"
    print(json.dumps(out))
    """
)


def test_split_networks_trains_as_one_device(tmp_path):
    out = run_on_two_devices(SCRIPT, str(tmp_path))
    assert out["devices"] == 2
    for clip in ("global", "per-network"):
        case = out[clip]
        assert case["moved"] > 1e-3, case  # training changed the parameters
        assert case["max_rel"] < 1e-4, case
        assert {"policy_loss", "value_loss", "entropy"} <= set(case["metrics"]), case
        for name, (one, two) in case["metrics"].items():
            assert two == pytest.approx(one, rel=1e-4, abs=1e-6), (clip, name, one, two)
        assert all("'network': 2" in s for s in case["replicated"]), case
    assert out["with_devices"].startswith("ConfigError: split_networks"), out["with_devices"]


def test_split_networks_needs_two_devices_and_a_separate_critic():
    from quickstudy.algorithms import rl2

    config = registry.get("rl2").config(
        "bandit-k5-n10", overrides={"ppo": {"split_networks": True}}
    )
    # The test process sees one CPU device.
    with pytest.raises(ConfigError, match="xla_force_host_platform_device_count=2"):
        registry.build("rl2", "bandit-k5-n10", config)
    with pytest.raises(ConfigError, match="separate_critic"):
        rl2.RL2Config(separate_critic=False, ppo=config.ppo)
    with pytest.raises(ConfigError, match="learner ppo"):
        rl2.RL2Config(learner="a2c", ppo=config.ppo)
