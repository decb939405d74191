"""Meta-World's own meta-learning evaluation of a quickstudy run (the ``metaworld`` extra).

Meta-World 3 ships its benchmark protocol as ``metaworld.evaluation.metalearning_evaluation``: on
the test split's vector environment (``metaworld.make_ml_envs_test``: 20 environments, 40 goals
per test class) it repeatedly samples test tasks, lets an agent collect adaptation episodes and
adapt, then counts successes over evaluation episodes. This module runs that function unchanged
on a trained run through an agent with the benchmark's interface (``init``, ``adapt_action``,
``step``, ``adapt``, ``eval_action``, ``reset``).

RL² adapts in context, so its agent keeps one recurrent memory from the first adaptation episode
to the last evaluation episode of a round, and never resets it between episodes. Its inputs are
those it was trained on (observation, previous action, previous reward, episode-ended flag):
:class:`TrialInputs` appends them to the observations as the environments step, because the
protocol hands an agent rewards only during adaptation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.errors import ConfigError
from quickstudy.rollout.episodes import Episodes
from quickstudy.rollout.host import make_host_actor, step_keys
from quickstudy.tasks.metaworld_tasks import SEED, _import_metaworld

OFFICIAL_META_BATCH = 20
"""Environments of the official test vector env (the protocol's meta-batch)."""
OFFICIAL_TASKS_PER_CLASS = 40
"""Test goals per class the official protocol draws from (so 20 environments divide them)."""


class TrialInputs(gym.vector.VectorWrapper):
    """Appends ``prev_action ⊕ prev_reward ⊕ episode_ended`` to every observation.

    The layout of :class:`quickstudy.tasks.trial.HostTrial`, RL²'s input: after an episode ends
    (the vector env resets it in the same step) the next observation carries the final reward and
    the flag 1. A reset of the whole vector env starts the trial afresh after the protocol draws
    new tasks (``call("sample_tasks")``) and otherwise continues it (a new episode: flag 1).

    Meta-World's helpers read ``call`` and ``get_attr`` of the vector env; both are forwarded.
    """

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        space = env.single_action_space
        self._low, self._high = space.low, space.high
        obs_dim = int(np.prod(env.single_observation_space.shape))
        dim = obs_dim + int(np.prod(space.shape)) + 2
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, env.num_envs
        )
        self._fresh = True
        self._last_reward = np.zeros((env.num_envs,), np.float32)

    def _augment(self, obs, action, reward, ended) -> np.ndarray:
        n = self.num_envs
        return np.concatenate(
            [
                np.asarray(obs, np.float32).reshape(n, -1),
                np.asarray(action, np.float32).reshape(n, -1),
                np.asarray(reward, np.float32)[:, None],
                np.asarray(ended, np.float32)[:, None],
            ],
            axis=1,
        )

    def reset(self, *, seed=None, options=None):
        """Resets every environment: a new trial after new tasks, else a new episode."""
        obs, info = self.env.reset(seed=seed, options=options)
        n = self.num_envs
        zeros = np.zeros((n, *self._low.shape), np.float32)
        if self._fresh:
            out = self._augment(obs, zeros, np.zeros(n), np.zeros(n))
        else:
            out = self._augment(obs, zeros, self._last_reward, np.ones(n))
        self._fresh = False
        return out, info

    def step(self, actions):
        """Steps every environment and appends the step's action, reward and end flag."""
        actions = np.clip(actions, self._low, self._high)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self._last_reward = np.asarray(reward, np.float32)
        ended = np.logical_or(terminated, truncated)
        return self._augment(obs, actions, reward, ended), reward, terminated, truncated, info

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Forwards to the environments; new tasks start a new trial."""
        if name == "sample_tasks":
            self._fresh = True
        return self.env.call(name, *args, **kwargs)

    def get_attr(self, name: str) -> Any:
        """Forwards to the environments."""
        return self.env.get_attr(name)


@dataclasses.dataclass
class RL2Agent:
    """An RL² policy behind Meta-World's ``MetaLearningAgent`` interface.

    Attributes:
        policy: RL²'s recurrent policy (``algo.parts["policy"]``).
        params: Its parameters.
        num_envs: Environments of the vector env.
        seed: Seed of the action sampling.
        deterministic: Act with the distribution's mode in the evaluation episodes.
    """

    policy: Any
    params: Any
    num_envs: int
    seed: int = 0
    deterministic: bool = False

    def __post_init__(self):
        self._actor = make_host_actor(self.policy)
        self._keys = iter(())
        self._key = jax.random.key(self.seed)
        self.init()

    def _next_key(self) -> np.ndarray:
        try:
            return next(self._keys)
        except StopIteration:
            self._key, sub = jax.random.split(self._key)
            self._keys = iter(step_keys(sub, 1024))
            return next(self._keys)

    def _act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        self._carry, action, *_ = self._actor.act(
            self.params, self._carry, obs, self._start, self._next_key(), deterministic
        )
        self._start = np.zeros((self.num_envs,), bool)
        return np.asarray(action, np.float64)

    def init(self) -> None:
        """A new round on new tasks: the memory starts empty."""
        self._carry = self.policy.init_carry(self.num_envs)
        self._start = np.ones((self.num_envs,), bool)

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Samples the next action of every environment, updating the memory."""
        return self._act(observations, False), {}

    def step(self, timestep: Any) -> None:
        """Nothing to store: the rewards reach the memory through the observations."""

    def adapt(self) -> None:
        """Nothing to do: RL² adapts in its memory as it acts."""

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        """The next action, with the memory of the whole round so far."""
        return self._act(observations, self.deterministic)

    def reset(self, env_mask: np.ndarray) -> None:
        """An episode ended: RL²'s memory spans the whole round, so it is kept."""


@dataclasses.dataclass
class MAMLAgent:
    """A MAML-RL policy behind Meta-World's ``MetaLearningAgent`` interface.

    Each environment of the vector env is one task with its own adapted parameters. ``step``
    records the adaptation episodes; ``adapt`` takes one policy-gradient step per environment on
    its episodes, with the meta-test's step sizes (α, then α·``test_later_lr_scale``) and the
    same processing (baseline, advantages) as ``quickstudy evaluate``.

    Attributes:
        algo: A MAML-RL algorithm on a host-stepped (e.g. Meta-World) task distribution.
        params: Its meta-trained parameters.
        num_envs: Environments of the vector env.
        seed: Seed of the action sampling.
    """

    algo: Any
    params: Any
    num_envs: int
    seed: int = 0

    def __post_init__(self):
        if self.algo.variant == "oracle":
            raise ConfigError("the oracle reads the true task, which the protocol hides")
        self._host = self.algo.parts["host"]
        example = self.algo.tasks.test_tasks(1)
        # The policy's inputs ignore the task (only the oracle reads it): any task will do.
        self._tasks = jax.tree.map(
            lambda x: np.repeat(np.asarray(x)[:1], self.num_envs, 0), example
        )
        self._key = jax.random.key(self.seed)
        self.init()

    def init(self) -> None:
        """New tasks: every environment starts from the meta-trained parameters."""
        self._params = self._host["tile"](self.params, self.num_envs)
        self._steps_taken = 0
        self._clear()

    def _clear(self) -> None:
        self._rows: dict[str, list[np.ndarray]] = {"obs": [], "actions": [], "rewards": []}
        self._ended: list[np.ndarray] = []

    def _act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._key, sub = jax.random.split(self._key)
        obs = np.asarray(obs, np.float32)[:, None]
        actions, env_actions = jax.device_get(
            self._host["act"](sub, self._params, self._tasks, obs)
        )
        return np.asarray(actions)[:, 0], np.asarray(env_actions, np.float64)[:, 0]

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Samples every environment's action from its current parameters."""
        actions, env_actions = self._act(observations)
        self._rows["obs"].append(np.asarray(observations, np.float32))
        self._rows["actions"].append(actions)
        return env_actions, {}

    def step(self, timestep: Any) -> None:
        """Records the step's reward and whether it ended an episode."""
        self._rows["rewards"].append(np.asarray(timestep.reward, np.float32))
        self._ended.append(np.logical_or(timestep.terminated, timestep.truncated))

    def adapt(self) -> None:
        """One policy-gradient step per environment on its finished adaptation episodes."""
        episodes = self._episodes()
        batch = self._host["process"](self._params, episodes, self._tasks)
        step = self._host["first_step"] if self._steps_taken == 0 else self._host["later_step"]
        self._params = step(self._params, batch)
        self._steps_taken += 1
        self._clear()

    def _episodes(self) -> Episodes:
        """The recorded steps as padded episodes ``[envs, episodes, T, ...]``."""
        obs, actions, rewards = (np.stack(self._rows[k], axis=1) for k in self._rows)
        ended = np.stack(self._ended, axis=1)  # [envs, steps]
        bounds = [np.flatnonzero(e) + 1 for e in ended]
        count = min(len(b) for b in bounds)  # complete episodes every environment has
        if count == 0:
            raise ValueError("adapt() before every environment finished an episode")
        spans = [list(zip(np.r_[0, b[: count - 1]], b[:count], strict=True)) for b in bounds]
        horizon = max(stop - start for env in spans for start, stop in env)
        n, d, a = self.num_envs, obs.shape[-1], actions.shape[-1]
        out = {
            "obs": np.zeros((n, count, horizon, d), np.float32),
            "actions": np.zeros((n, count, horizon, a), np.float32),
            "rewards": np.zeros((n, count, horizon), np.float32),
            "valid": np.zeros((n, count, horizon), bool),
        }
        for i, env in enumerate(spans):
            for j, (start, stop) in enumerate(env):
                length = stop - start
                out["obs"][i, j, :length] = obs[i, start:stop]
                out["actions"][i, j, :length] = actions[i, start:stop]
                out["rewards"][i, j, :length] = rewards[i, start:stop]
                out["valid"][i, j, :length] = True
        success = np.zeros_like(out["rewards"])
        return Episodes(**{k: jnp.asarray(v) for k, v in out.items()}, success=jnp.asarray(success))

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        """An action sampled from each environment's adapted parameters."""
        return self._act(observations)[1]

    def reset(self, env_mask: np.ndarray) -> None:
        """Nothing: the adapted parameters belong to the environment's task, not the episode."""


def benchmark_name(task: str) -> str:
    """Meta-World's name of a quickstudy task: ``ml1-reach`` -> ``reach-v3``, ``ml10`` -> ML10.

    Raises:
        ConfigError: ``task`` is not a Meta-World task.
    """
    if task in ("ml10", "ml45"):
        return task.upper()
    if task.startswith("ml1-"):
        return f"{task.removeprefix('ml1-')}-v3"
    raise ConfigError(f"{task} is not a Meta-World task (ml1-<env>, ml10, ml45)")


def official_evaluation(
    run: Any,
    params: Any,
    num_evals: int = 10,
    adaptation_episodes: int = 0,
    evaluation_episodes: int = 3,
    seed: int = 0,
    deterministic: bool = False,
) -> dict[str, Any]:
    """Runs ``metaworld.evaluation.metalearning_evaluation`` on a trained run.

    Args:
        run: An RL² or MAML-RL run trained on ``ml1-<env>``, ``ml10`` or ``ml45``.
        params: Its parameters.
        num_evals: Rounds of task sampling (the protocol's default: 10).
        adaptation_episodes: Episodes per environment before the evaluation episodes (0: RL²'s
            trial length minus one, the episodes its memory was trained to use; MAML-RL's
            ``episodes_per_task``, the batch its inner step was meta-trained on).
        evaluation_episodes: Episodes counted for success (the protocol's default: 3).
        seed: Seed of the agent's action sampling.
        deterministic: Act with the policy's mode in the evaluation episodes (RL²).

    Returns:
        ``{"success_rate", "mean_return", "success_rate_per_task", "settings"}``.

    Raises:
        ConfigError: Not an RL² or MAML-RL run, or not trained on a Meta-World task.
    """
    metaworld = _import_metaworld()
    from metaworld.evaluation import metalearning_evaluation

    name = benchmark_name(run.task_name)
    if run.algo_name not in ("rl2", "maml-rl"):
        raise ConfigError(
            f"Meta-World's official evaluation takes RL² and MAML-RL runs, not {run.algo_name}"
        )
    envs = metaworld.make_ml_envs_test(
        name,
        seed=SEED,
        meta_batch_size=OFFICIAL_META_BATCH,
        total_tasks_per_cls=OFFICIAL_TASKS_PER_CLASS,
    )
    if run.algo_name == "rl2":
        trial = int(run.algo.derived["episodes"])
        adaptation_episodes = adaptation_episodes or max(1, trial - 1)
        envs = TrialInputs(envs)
        agent = RL2Agent(run.algo.parts["policy"], params, envs.num_envs, seed, deterministic)
    else:
        if deterministic:
            raise ConfigError("deterministic evaluation is available for RL² runs only")
        trial = None
        adaptation_episodes = adaptation_episodes or run.algo.config.episodes_per_task
        agent = MAMLAgent(run.algo, params, envs.num_envs, seed)
    try:
        success, mean_return, per_task = metalearning_evaluation(
            agent,
            envs,
            num_evals=num_evals,
            adaptation_steps=1,
            adaptation_episodes=adaptation_episodes,
            evaluation_episodes=evaluation_episodes,
        )
    finally:
        envs.close()
    return {
        "success_rate": float(success),
        "mean_return": float(mean_return),
        "success_rate_per_task": {k: float(v) for k, v in per_task.items()},
        "settings": {
            "benchmark": name,
            "num_evals": num_evals,
            "adaptation_episodes": adaptation_episodes,
            "evaluation_episodes": evaluation_episodes,
            "meta_batch_size": OFFICIAL_META_BATCH,
            "tasks_per_class": OFFICIAL_TASKS_PER_CLASS,
            "trial_episodes_trained": trial,
            "deterministic": deterministic,
            "seed": seed,
        },
    }
