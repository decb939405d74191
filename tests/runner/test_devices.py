"""Data-parallel training over two (forced) CPU devices matches one device, same seed."""

import textwrap

import pytest
from support import run_on_two_devices

from quickstudy import runner
from quickstudy.errors import ConfigError

# Runs in a fresh interpreter that sees two devices (support.run_on_two_devices).
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from quickstudy import runner
    from quickstudy.algorithms import registry
    RL2 = {"total_steps": 3 * 16 * 10, "num_envs": 16, "hidden_size": 16}
    CASES = {
        "rl2": ("bandit-k5-n10", {**RL2, "ppo": {"num_minibatches": 2}}),
        "pearl": ("point-robot", {"total_steps": 80 * 200 + 2 * 5 * (200 + 60 + 200),
                                  "num_steps_posterior": 60, "num_train_steps_per_itr": 3,
                                  "meta_batch": 4, "batch_size": 16, "embedding_batch_size": 8,
                                  "replay_size": 80 * 1000, "sac": {"hidden_sizes": (16, 16)},
                                  "encoder": {"encoder_hidden": (16,), "latent_dim": 3}}),
        "rl2-strided": ("bandit-k5-n10", {
            **RL2, "ppo": {"num_minibatches": 2, "strided_minibatches": True}}),
        "rl2-sac": ("point-robot", {"total_steps": 3 * 4 * 60, "num_envs": 4, "memory_size": 8,
                                    "train_ratio": 0.02, "batch_segments": 4, "batch_steps": 5,
                                    "replay_size": 10 * 60, "sac": {"hidden_sizes": (16, 16)}}),
    }
    out = {"devices": len(jax.devices())}
    for case, (task, overrides) in CASES.items():
        name = case.removesuffix("-strided")
        config = registry.get(name).config(task, overrides=overrides)
        finals, notes = {}, []
        for devices in (1, 2):
            settings = runner.RunSettings(seed=1, chunk_updates=2, devices=devices)
            run = runner.create_run(name, task, config, settings,
                                    run_dir=f"{sys.argv[1]}/{case}-{devices}")
            finals[devices] = runner.train(run, on_warning=notes.append)
        a = [np.asarray(x) for x in jax.tree.leaves(finals[1].params)]
        b = [np.asarray(x) for x in jax.tree.leaves(finals[2].params)]
        split = [str(x.sharding.spec) for m, x in zip(
            jax.tree.leaves(registry.build(name, task, config).data_axes(finals[2])),
            jax.tree.leaves(finals[2])) if m and x.ndim]
        out[case] = {
            "max_abs": max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)),
            "max_rel": max(float(np.max(np.abs(x - y) / (np.abs(x) + 1e-3))) for x, y in zip(a, b)),
            "split": sorted(set(split)),
            "notes": notes,
        }
    print(json.dumps(out))
    """
)


def test_two_devices_give_one_devices_result(tmp_path):
    out = run_on_two_devices(SCRIPT, str(tmp_path))
    assert out["devices"] == 2
    for name in ("rl2", "rl2-strided", "pearl", "rl2-sac"):
        assert out[name]["split"] == ["P('data',)"], (name, out[name])
        assert out[name]["max_rel"] < 1e-3, (name, out[name])
    # The runner passes on the algorithm's device notes, once, and only with several devices.
    assert len(out["rl2"]["notes"]) == 1 and "strided" in out["rl2"]["notes"][0]
    assert out["rl2-strided"]["notes"] == [] and out["pearl"]["notes"] == []


def test_more_devices_than_the_machine_has_is_refused_with_the_way_out(tmp_path):
    from quickstudy.algorithms import registry

    config = registry.get("rl2").config("bandit-k5-n10")
    with pytest.raises(ConfigError, match="xla_force_host_platform_device_count=64"):
        runner.create_run(
            "rl2", "bandit-k5-n10", config, runner.RunSettings(devices=64), tmp_path / "r"
        )
    with pytest.raises(ConfigError, match="steps its environments on the host"):
        runner.create_run(
            "rl2", "nav2d-numpy", registry.get("rl2").config("nav2d-numpy"),
            runner.RunSettings(devices=2), tmp_path / "h",
        )  # fmt: skip
    assert not (tmp_path / "r").exists()
