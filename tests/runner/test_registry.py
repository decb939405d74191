"""The one algorithm registry: every algorithm builds, its configs round-trip, presets apply."""

import dataclasses
import json

import pytest

from quickstudy.algorithms import registry
from quickstudy.errors import ConfigError, UnknownNameError
from quickstudy.types import Algorithm


@pytest.mark.parametrize("name", list(registry.ALGORITHMS))
def test_every_algorithm_builds_on_its_default_task_with_the_contract(name):
    spec = registry.get(name)
    algo = registry.build(name, spec.default_task, spec.config(spec.default_task))
    assert isinstance(algo, Algorithm)
    assert algo.num_updates >= 1 and algo.steps_per_update >= 1
    assert algo.default_points >= 1
    assert isinstance(algo.progress, tuple) and len(algo.progress) == 2


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        (name, preset)
        for name, spec in registry.ALGORITHMS.items()
        for preset in [None, *spec.presets]
    ],
)
def test_configs_round_trip_through_their_json_record(name, preset):
    spec = registry.get(name)
    config = spec.config(spec.default_task, preset)
    record = json.loads(json.dumps(dataclasses.asdict(config)))
    assert spec.config_from_record(record) == config


def test_presets_apply_nested_overrides_and_unknown_names_are_listed():
    spec = registry.get("rl2")
    config = spec.config("mdp-s10-a5-n10", "mdp", {"total_steps": 123})
    assert config.hidden_size == 256 and config.total_steps == 123
    assert config.ppo.clip_per_network and config.ppo.learning_rate == 1e-3
    assert config.ppo.gae_lambda == spec.config_cls().ppo.gae_lambda  # untouched fields stay
    with pytest.raises(UnknownNameError, match="Valid presets: mdp"):
        spec.config("mdp-s10-a5-n10", "mdps")
    with pytest.raises(UnknownNameError, match="Valid algorithms: rl2, snail, maml, maml-rl"):
        registry.get("varibad")


def test_task_defaults_live_in_the_algorithms_presets():
    maml = registry.get("maml")
    assert maml.config("fewshot-glyphs-20way-1shot").inner_lr == 0.1
    assert maml.config("sinusoid-k10") == maml.config_cls()
    assert (
        registry.get("rl2").config("fewshot-glyphs-5way-1shot") == registry.get("rl2").config_cls()
    )


def test_a_record_with_an_unknown_field_is_refused_by_name():
    with pytest.raises(ConfigError, match="hidden_sise"):
        registry.get("rl2").config_from_record({"hidden_sise": 8})


def test_a_partial_nested_record_keeps_the_algorithms_own_defaults():
    config = registry.get("rl2").config_from_record({"ppo": {"learning_rate": 1e-3}})
    assert config.ppo.learning_rate == 1e-3
    assert config.ppo == dataclasses.replace(
        registry.get("rl2").config_cls().ppo, learning_rate=1e-3
    )
