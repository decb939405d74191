"""The one registry of algorithms: the CLI, the runner and the reproduction engine read only it.

A new family is its algorithm file (a config dataclass and ``make(config, tasks) ->
Algorithm``), its presets, one :class:`AlgorithmSpec` line below, and its tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from quickstudy import tasks as task_registry
from quickstudy.algorithms import legacy
from quickstudy.algorithms.maml import MAMLConfig, make_maml
from quickstudy.algorithms.maml_rl import MAMLRLConfig, make_maml_rl
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.errors import UnknownNameError
from quickstudy.presets import maml as maml_presets
from quickstudy.presets import rl2 as rl2_presets
from quickstudy.types import Algorithm, Preset, config_from_dict, replace_nested


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


def build(name: str, task: str, config: Any) -> Algorithm:
    """Builds the named algorithm with ``config`` on the named task distribution.

    Raises:
        UnknownNameError: Unknown algorithm or task; the message lists the valid names.
        ConfigError: The algorithm cannot run on that task.
    """
    return get(name).make(config, task_registry.make(task))
