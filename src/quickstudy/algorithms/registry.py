"""The one registry of algorithms: the CLI, the runner and the reproduction engine read only it.

A new family is its algorithm file (a config dataclass and ``make(config, tasks) ->
Algorithm``), its presets, one :class:`AlgorithmSpec` line below, and its tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from quickstudy import tasks as task_registry
from quickstudy.algorithms import legacy
from quickstudy.algorithms.maml import MAMLConfig, make_maml
from quickstudy.algorithms.maml_rl import MAMLRLConfig, make_maml_rl
from quickstudy.algorithms.pearl import PEARLConfig, make_pearl
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.algorithms.rl2_sac import RL2SACConfig, make_rl2_sac
from quickstudy.algorithms.snail import SNAILConfig, make_snail
from quickstudy.envs.base import Box
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.presets import maml as maml_presets
from quickstudy.presets import pearl as pearl_presets
from quickstudy.presets import rl2 as rl2_presets
from quickstudy.presets import snail as snail_presets
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.fewshot import FewShotTasks
from quickstudy.types import Algorithm, Preset, check_config, config_from_dict, replace_nested


@dataclasses.dataclass(frozen=True)
class AlgorithmSpec:
    """Everything the tools need to know about one algorithm.

    Attributes:
        name: Registry name (``quickstudy train NAME``).
        summary: One line for ``--help``.
        config_cls: The frozen config dataclass.
        make: ``make(config, tasks) -> Algorithm``.
        default_task: The task ``train`` uses when none is given.
        presets: Named recipes (``--preset NAME``).
        task_defaults: ``task_defaults(tasks) -> overrides`` that suit a task, applied before a
            preset and the command line.
        migrate: Rewrites a ``config.json`` record of an older layout into the current one.
        migrate_state: ``migrate_state(state_dict, config)`` rewrites a checkpoint's decoded
            state of an older layout into the current one.
        chunk_updates: Default updates per compiled chunk (logging and checkpoint grain).
        checkpoint_every: Default chunks between checkpoints.
        suits: ``suits(tasks) -> bool``: the kinds of task distribution it trains on (for
            ``quickstudy tasks``; `build` gives the reason when one does not fit).
    """

    name: str
    summary: str
    config_cls: type
    make: Callable[[Any, Any], Algorithm]
    default_task: str
    presets: Mapping[str, Preset] = dataclasses.field(default_factory=dict)
    task_defaults: Callable[[Any], dict[str, Any]] = lambda tasks: {}
    migrate: Callable[[dict[str, Any]], dict[str, Any]] = lambda record: record
    migrate_state: Callable[[Any, Any], Any] = lambda state, config: state
    chunk_updates: int = 10
    checkpoint_every: int = 5
    suits: Callable[[Any], bool] = lambda tasks: True

    def config(
        self, task: str, preset: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Any:
        """The config of a run: defaults, then the task's defaults, the preset, the overrides.

        Raises:
            UnknownNameError: Unknown task or preset (the message lists the valid ones).
            ConfigError: An override the config rejects.
        """
        config = replace_nested(self.config_cls(), self.task_defaults(task_registry.make(task)))
        if preset is not None:
            config = replace_nested(config, self.preset(preset).overrides)
        return replace_nested(config, overrides or {})

    def preset(self, name: str) -> Preset:
        """The named recipe.

        Raises:
            UnknownNameError: No such preset.
        """
        if name not in self.presets:
            valid = ", ".join(self.presets) or "none"
            raise UnknownNameError(
                f"unknown preset {name!r} for {self.name}. Valid presets: {valid}"
            )
        return self.presets[name]

    def config_from_record(self, record: Mapping[str, Any], where: str = "config") -> Any:
        """The config recorded in a ``config.json`` (any layout this version can read)."""
        return config_from_dict(self.config_cls, self.migrate(dict(record)), where)


def _bounded_continuous_rl(tasks: Any) -> bool:
    if not isinstance(tasks, TaskDistribution):
        return False
    space = tasks.env.action_space(tasks.sample_one(jax.random.key(0)))
    return isinstance(space, Box) and bool(np.isfinite([space.low, space.high]).all())


def _continuous_rl(tasks: Any) -> bool:
    if not isinstance(tasks, TaskDistribution):
        return False
    return isinstance(tasks.env.action_space(tasks.sample_one(jax.random.key(0))), Box)


ALGORITHMS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec(
            "rl2",
            "RL²: recurrent policy over K-episode trials, trained with PPO, TRPO or A2C",
            RL2Config,
            make_rl2,
            "bandit-k5-n10",
            rl2_presets.PRESETS,
            migrate=legacy.rl2,
            migrate_state=legacy.rl2_state,
            suits=lambda tasks: isinstance(tasks, TaskDistribution),
        ),
        AlgorithmSpec(
            "snail",
            "SNAIL: temporal convolutions and causal attention over K-episode trials, PPO/TRPO/A2C",
            SNAILConfig,
            make_snail,
            "bandit-k5-n10",
            snail_presets.PRESETS,
            suits=lambda tasks: isinstance(tasks, TaskDistribution),
        ),
        AlgorithmSpec(
            "maml",
            "MAML for supervised few-shot learning (and first-order, Meta-SGD, baselines)",
            MAMLConfig,
            make_maml,
            "sinusoid-k10",
            task_defaults=maml_presets.task_defaults,
            chunk_updates=1000,
            checkpoint_every=10,
            suits=lambda tasks: isinstance(tasks, FewShotTasks),
        ),
        AlgorithmSpec(
            "maml-rl",
            "MAML for RL: policy-gradient inner loop, TRPO or PPO outer loop",
            MAMLRLConfig,
            make_maml_rl,
            "nav2d",
            migrate=legacy.maml_rl,
            chunk_updates=5,
            checkpoint_every=1,
            suits=_continuous_rl,
        ),
        AlgorithmSpec(
            "pearl",
            "PEARL: probabilistic context encoder + SAC, posterior-sampling exploration",
            PEARLConfig,
            make_pearl,
            "point-robot",
            pearl_presets.PRESETS,
            task_defaults=pearl_presets.task_defaults,
            chunk_updates=5,
            checkpoint_every=1,
            suits=_bounded_continuous_rl,
        ),
        AlgorithmSpec(
            "rl2-sac",
            "RL²'s recurrent policy trained off-policy with SAC from replayed trials",
            RL2SACConfig,
            make_rl2_sac,
            "point-robot",
            task_defaults=pearl_presets.rl2_sac_task_defaults,
            chunk_updates=5,
            checkpoint_every=1,
            suits=_bounded_continuous_rl,
        ),
    )
}


def get(name: str) -> AlgorithmSpec:
    """The registered algorithm ``name``.

    Raises:
        UnknownNameError: Unknown name; the message lists the valid ones.
    """
    if name not in ALGORITHMS:
        raise UnknownNameError(
            f"unknown algorithm {name!r}. Valid algorithms: {', '.join(ALGORITHMS)}"
        )
    return ALGORITHMS[name]


def suited(task: str) -> list[str]:
    """The registered algorithms that train on the named task distribution."""
    tasks = task_registry.make(task)
    return [name for name, spec in ALGORITHMS.items() if spec.suits(tasks)]


def build(name: str, task: str, config: Any) -> Algorithm:
    """Builds the named algorithm with ``config`` on the named task distribution.

    Raises:
        UnknownNameError: Unknown algorithm or task; the message lists the valid names.
        ConfigError: The algorithm cannot run on that task, or a config field holds NaN, an
            infinity or a value of the wrong type (see :func:`quickstudy.types.check_config`).
    """
    spec = get(name)
    if not isinstance(config, spec.config_cls):
        raise ConfigError(f"{name} takes a {spec.config_cls.__name__}, got {type(config).__name__}")
    check_config(config)
    return spec.make(config, task_registry.make(task))
