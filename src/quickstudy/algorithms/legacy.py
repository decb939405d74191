"""``config.json`` layouts written by earlier versions, rewritten into the current ones.

Runs keep working across a change of a config's layout: ``open_run`` passes the recorded config
through its algorithm's ``migrate`` before building it. A recorded value that the current version
can no longer express is an error that names it.
"""

from __future__ import annotations

from typing import Any

from quickstudy.errors import ConfigError

_PPO_FIELDS = (
    "learning_rate",
    "num_epochs",
    "num_minibatches",
    "clip_eps",
    "value_clip_eps",
    "vf_coef",
    "ent_coef",
    "max_grad_norm",
    "clip_per_network",
    "gamma",
    "gae_lambda",
    "anneal_lr",
    "adam_eps",
)
# RL² knobs that measured no gain and left the config, with the value that means "off".
_RL2_REMOVED = {
    "next_obs_coef": 0.0,
    "reward_target": "observed",
    "head_activation": "relu",
    "critic_progress": False,
}
_TRUST_REGION_FIELDS = ("max_kl", "cg_iters", "cg_damping", "backtrack_ratio", "max_backtracks")
LAST_FLAT_COMMIT = "717000b"
"""The last commit whose RL² and MAML-RL configs were flat."""


def rl2(record: dict[str, Any]) -> dict[str, Any]:
    """A flat RL² config (before the learner was nested) in the current layout.

    Raises:
        ConfigError: The run used a knob that no longer exists with a value other than off.
    """
    if "ppo" in record:
        return record
    used = {k: record[k] for k, off in _RL2_REMOVED.items() if k in record and record[k] != off}
    if used:
        shown = ", ".join(f"{k}={v!r}" for k, v in used.items())
        raise ConfigError(
            f"this run used {shown}, removed after commit {LAST_FLAT_COMMIT}; continue it with "
            f"quickstudy at that commit"
        )
    out = {k: v for k, v in record.items() if k not in _RL2_REMOVED and k not in _PPO_FIELDS}
    out["ppo"] = {k: record[k] for k in _PPO_FIELDS if k in record}
    return out


def rl2_state(saved: dict[str, Any], config: Any) -> dict[str, Any]:
    """An RL² checkpoint's state dict from before the carry became a pytree, in today's layout.

    The old rollout kept one array ``hidden`` ``[B, S]``: the policy core's state, then the
    critic core's (each ``[c, h]`` side by side for an LSTM); and ``trial_return``.
    """
    rollout = saved.get("rollout")
    if not isinstance(rollout, dict) or "hidden" not in rollout:
        return saved
    hidden = rollout["hidden"]
    lstm = config.cell == "lstm"
    sizes = [config.hidden_size]
    if config.separate_critic:
        sizes.append(config.critic_hidden_size or config.hidden_size)
    carry, start = {}, 0
    for name, size in zip(("core", "critic_core"), sizes, strict=False):
        width = 2 * size if lstm else size
        part = hidden[:, start : start + width]
        carry[name] = {"0": part[:, :size], "1": part[:, size:]} if lstm else part
        start += width
    rollout = {k: v for k, v in rollout.items() if k not in ("hidden", "trial_return")}
    rollout["carry"] = carry
    rollout["episode_return"] = saved["rollout"]["trial_return"]
    return {**saved, "rollout": rollout}


def maml_rl(record: dict[str, Any]) -> dict[str, Any]:
    """A flat MAML-RL config (before the trust region was nested) in the current layout."""
    if "trust_region" in record:
        return record
    out = {k: v for k, v in record.items() if k not in _TRUST_REGION_FIELDS}
    out["trust_region"] = {k: record[k] for k in _TRUST_REGION_FIELDS if k in record}
    return out
