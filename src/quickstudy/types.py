"""The contracts every family of meta-RL algorithm shares.

* :class:`Policy`: ``init_carry(batch)`` and ``apply(params, carry, obs, start) -> (carry, out)``;
  the carry is any pytree (a GRU state, an LSTM's two states, an attention cache, a sampled
  latent) and learners never look inside it.
* :class:`Transition`: one record of experience that serves on-policy learners (log-probability,
  value, bootstrap value) and off-policy ones (``next_obs``).
* :class:`Learner`: an ``(init, update)`` pair that improves a policy from a batch of transitions.
* :class:`MetaTestResult`: what every algorithm's meta-test returns: a metric per held-out task
  along an adaptation axis (episodes, gradient steps, posterior updates).
* :class:`Algorithm`: a config plus pure ``init``/``update``/``meta_test`` functions and what the
  runner needs to drive them.

Nothing here imports the rest of the library: these are the types the other layers agree on.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
from flax import struct

from quickstudy.errors import ConfigError

PyTree = Any
Carry = Any
"""A policy's memory: any pytree whose leaves have a leading batch axis ``[B, ...]``."""
Metrics = dict[str, jax.Array]
PARAM_GROUPS = ("actor", "critic")
"""The labels a :class:`Policy`'s ``param_groups`` gives: the action path and the value path."""


class PolicyOutput(NamedTuple):
    """What a policy emits for a sequence of observations, time-major ``[T, B, ...]``.

    Attributes:
        dist: Parameters of the action distribution ``[T, B, P]``.
        value: State-value estimates ``[T, B]`` (``None`` for a policy without a critic).
        aux: Auxiliary heads by name (e.g. ``"reward"``: predicted reward of every action
            ``[T, B, A]``), read by auxiliary losses; empty when the policy has none.
    """

    dist: jax.Array
    value: jax.Array | None
    aux: dict[str, jax.Array]


ApplyFn = Callable[[PyTree, Carry, jax.Array, jax.Array], tuple[Carry, PolicyOutput]]
"""``apply(params, carry [B, ...], obs [T, B, D], start [T, B]) -> (carry, PolicyOutput)``.

``start[t, b]`` resets row ``b`` of the carry before step ``t`` (a new trial or episode begins).
"""


class Policy(NamedTuple):
    """A (possibly recurrent) policy as pure functions.

    Attributes:
        init: ``init(key) -> params``.
        init_carry: ``init_carry(batch) -> carry``, the memory at the start of a trial.
        apply: See :data:`ApplyFn`.
        distribution: The action distribution that ``PolicyOutput.dist`` parameterises.
        param_groups: Maps a params (or gradient) pytree to one of the same structure whose
            leaves name a group (``"actor"``, ``"critic"``); ``None`` when the policy has no
            separable groups.
    """

    init: Callable[[jax.Array], PyTree]
    init_carry: Callable[[int], Carry]
    apply: ApplyFn
    distribution: Any
    param_groups: Callable[[PyTree], PyTree] | None = None


class Transition(NamedTuple):
    """A batch of experience, time-major ``[T, B, ...]``, for on- and off-policy learners.

    Attributes:
        obs: Observations the actions were taken in ``[T, B, D]``.
        action: Actions taken ``[T, B]`` (discrete) or ``[T, B, A]``.
        reward: Rewards ``[T, B]``.
        next_obs: The true next observations ``[T, B, D]`` (before any reset).
        terminated: The step ended the episode in a terminal state ``[T, B]``.
        truncated: The step ended the episode by a time limit ``[T, B]``.
        start: ``obs`` is the first of a trial (the policy's memory was reset) ``[T, B]``.
        log_prob: ``log pi(a | history)`` of the behaviour policy ``[T, B]``.
        value: ``V(history)`` of the behaviour policy ``[T, B]``.
        next_value: Value of ``next_obs`` continuing the history: the bootstrap target at a
            truncated step, the next step's value otherwise ``[T, B]``.
        info: Environment info plus the collector's ``episode_return`` (the finished
            episode's total reward at steps that end one, else 0), ``[T, B]`` leaves.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    start: jax.Array
    log_prob: jax.Array
    value: jax.Array
    next_value: jax.Array
    info: dict[str, jax.Array]


class Watch(NamedTuple):
    """A divergence warning on one training metric (the run goes on; non-finite values stop it).

    Attributes:
        metric: The metrics key.
        above: Warn when the value exceeds this.
        growth: Warn when ``|value|`` exceeds this multiple of ``max(|first value|, 1)``, its
            first finite value in the process.
    """

    metric: str
    above: float = float("inf")
    growth: float = float("inf")


class Learner(NamedTuple):
    """An ``(init, update)`` pair that improves a policy from collected experience.

    Attributes:
        init: ``init(params) -> learner_state`` (optimiser state).
        update: ``update(key, params, learner_state, batch, carry0) -> (params, learner_state,
            metrics)``, where ``batch`` is a :class:`Transition` ``[T, B, ...]`` and ``carry0``
            the policy's memory before its first step (``[B, ...]`` leaves).
        watch: Divergence warnings on the learner's metrics (see :class:`Watch`).
    """

    init: Callable[[PyTree], PyTree]
    update: Callable[..., tuple[PyTree, PyTree, Metrics]]
    watch: tuple[Watch, ...] = ()


@struct.dataclass
class MetaTestResult:
    """Per-task results of a meta-test along its adaptation axis (one record for every family).

    Attributes:
        values: The metric of each held-out task at each point of the axis ``[N, K]``.
        success: Success rate or flag at each point ``[N, K]``, or ``None`` where undefined.
        extras: Further per-task arrays ``[N, K]`` by name (episode lengths, the loss beside an
            accuracy), saved with the results.
        metric: Name of ``values``: ``"return"``, ``"mse"``, ``"accuracy"``, ...
        axis: What a point of the axis is: ``"episode"`` (in-context learners, the points are
            the episodes of one trial), ``"gradient step"`` (MAML; column ``k`` is after ``k``
            steps, column 0 before adaptation) or ``"posterior update"``.
        higher_is_better: Direction of the metric.
    """

    values: jax.Array
    success: jax.Array | None = None
    extras: dict[str, jax.Array] = dataclasses.field(default_factory=dict)
    metric: str = struct.field(pytree_node=False, default="return")
    axis: str = struct.field(pytree_node=False, default="episode")
    higher_is_better: bool = struct.field(pytree_node=False, default=True)

    @property
    def first_index(self) -> int:
        """The axis position of column 0: 1 for episodes, 0 for steps (0 = before adapting)."""
        return 1 if self.axis == "episode" else 0


class Algorithm(NamedTuple):
    """One configuration of an algorithm on one task distribution, as pure functions.

    Attributes:
        config: The configuration (a frozen dataclass).
        tasks: The task distribution.
        init: ``init(key) -> state``; ``state.params`` are what ``meta_test`` takes and
            ``state.update`` counts the updates done.
        update: ``update(state) -> (state, metrics)``: one meta-iteration.
        meta_test: ``meta_test(params, key, test_tasks, points) -> MetaTestResult`` with
            ``points`` adaptation episodes or gradient steps (static).
        num_updates: Updates in the configured budget.
        steps_per_update: Budget units per update (environment steps, or 1 for a supervised
            meta-iteration).
        jittable: ``update`` and ``meta_test`` are pure JAX (the runner scans chunks of updates
            in one program); otherwise they step a host environment and are called from
            Python.
        progress: ``(metrics key, label)`` of the training metric a progress bar shows.
        default_points: ``points`` of the meta-test when none are asked for.
        step_unit: What ``steps_per_update`` counts, e.g. ``"env steps"``.
        derived: Sizes derived from the config worth recording (e.g. episodes per trial).
        variant: Which member of the family the config trains (MAML's ``"maml"``,
            ``"pretrained"``, ``"oracle"``), recorded with the meta-test; ``None`` if one.
        progress_point: The adaptation point the training metric is measured at (MAML:
            after its inner steps, 0 for a variant that takes none); ``None``: a whole trial.
        parts: The building blocks, for inspection (e.g. ``"policy"``, ``"network"``,
            ``"env"``); what an algorithm lists here is its own.
        watch: Divergence warnings on training metrics (see :class:`Watch`).
        axis: What the meta-test's points count: ``"episode"`` (episodes per trial) or
            ``"gradient step"``.
        initial_steps: Budget units ``init`` spends before the first update (PEARL's initial
            collection); update ``u`` ends at ``initial_steps + u * steps_per_update``.
        data_axes: ``data_axes(state)``: a pytree shaped like ``state`` with ``True`` where a
            leaf's first axis is data (environments in flight, training tasks, stored
            segments) that data-parallel training splits over devices; ``None`` where the
            algorithm does not support it.
        device_notes: What a user training over several devices should know about this
            configuration (e.g. work that every device repeats); the runner reports each one
            when ``devices > 1``.
        own_placement: Why the update places its own work on several devices (RL²'s
            ``split_networks``), which data-parallel training (``devices > 1``) cannot be
            combined with; ``None`` where it does not.
    """

    config: Any
    tasks: Any
    init: Callable[[jax.Array], PyTree]
    update: Callable[[PyTree], tuple[PyTree, Metrics]]
    meta_test: Callable[[PyTree, jax.Array, PyTree, int], MetaTestResult]
    num_updates: int
    steps_per_update: int
    jittable: bool
    progress: tuple[str, str]
    default_points: int
    step_unit: str = "env steps"
    derived: Mapping[str, int] = types.MappingProxyType({})
    variant: str | None = None
    progress_point: int | None = None
    parts: Mapping[str, Any] = types.MappingProxyType({})
    watch: tuple[Watch, ...] = ()
    axis: str = "episode"
    initial_steps: int = 0
    data_axes: Callable[[PyTree], PyTree] | None = None
    device_notes: tuple[str, ...] = ()
    own_placement: str | None = None


def leaves_of(state: PyTree, *fields: str) -> PyTree:
    """A mask for ``Algorithm.data_axes``: ``True`` on the named fields' leaves.

    Args:
        state: A ``NamedTuple`` state.
        *fields: The fields whose every leaf has a data axis first.
    """
    mask = jax.tree.map(lambda _: False, state)
    return mask._replace(**{f: jax.tree.map(lambda _: True, getattr(state, f)) for f in fields})


class Preset(NamedTuple):
    """A named recipe of an algorithm: config overrides with the reason they exist.

    Attributes:
        description: What it is for and where it was measured (shown by ``--help``).
        overrides: Config fields to set; nested configs take nested dicts.
    """

    description: str
    overrides: Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# Config plumbing shared by every algorithm's frozen dataclass.


def check_fields(config: Any, **kinds: tuple[str, ...]) -> None:
    """Validates numeric fields of a config by kind and names the first bad one.

    Kinds: ``positive_int``, ``nonneg_int``, ``positive`` (finite number > 0), ``nonneg``
    (finite number >= 0), ``unit`` (in [0, 1]), ``unit_open`` (in (0, 1]).

    Raises:
        ConfigError: A field's value is not of its kind.
    """
    checks = {
        "positive_int": (lambda v: _is_int(v) and v > 0, "a positive integer"),
        "nonneg_int": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
        "positive": (lambda v: _is_num(v) and v > 0, "a positive number"),
        "nonneg": (lambda v: _is_num(v) and v >= 0, "a non-negative number"),
        "unit": (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
        "unit_open": (lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]"),
    }
    for kind, names in kinds.items():
        ok, text = checks[kind]
        for name in names:
            value = getattr(config, name)
            if not ok(value):
                raise ConfigError(f"{name} must be {text}, got {value!r}")


INT_LIMIT = 2**31 - 1
"""The largest integer a config field may hold (sizes and counts become int32 in JAX)."""


def check_config(config: Any, where: str = "") -> None:
    """Checks every field of a (nested) config dataclass against its annotation.

    Numbers must be finite and integers within ``±INT_LIMIT``; a ``bool`` is not a number,
    an ``int`` is accepted where a ``float`` is declared; ``Literal`` fields must hold one of
    their values; ``tuple[int, ...]`` fields a tuple of such integers. This runs on every
    config an algorithm is built with, so NaN, infinities and values of the wrong type are
    refused everywhere, whatever the per-field checks of the config itself.

    Args:
        config: A config dataclass instance.
        where: Prefix of the field names in messages (for nested configs).

    Raises:
        ConfigError: A field's value does not fit its annotation; the message names it.
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        name, value = f"{where}{field.name}", getattr(config, field.name)
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise ConfigError(f"{name} must be a {hint.__name__}, got {value!r}")
            check_config(value, f"{name}.")
            continue
        problem = _type_problem(hint, value)
        if problem:
            raise ConfigError(f"{name} must be {problem}, got {value!r}")


def _type_problem(hint: Any, value: Any) -> str | None:
    """What ``value`` should be to fit ``hint``, or ``None`` if it fits (or is not checked)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        ok = _is_int(value) and abs(value) <= INT_LIMIT
        return None if ok else f"an integer in [-{INT_LIMIT}, {INT_LIMIT}]"
    if hint is float:
        ok = _is_num(value) and abs(value) <= 1e300
        return None if ok else "a finite number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if origin is typing.Literal:
        return None if value in args else "one of " + ", ".join(map(repr, args))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, tuple):
            return "a tuple"
        bad = [p for p in (_type_problem(args[0], v) for v in value) if p]
        return f"a tuple whose items are each {bad[0]}" if bad else None
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(a, value) for a in args if a is not type(None)]
        if value is None and type(None) in args:
            return None
        return None if any(p is None for p in problems) else (problems[0] if problems else None)
    return None


def check_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    """Raises :class:`ConfigError` unless ``config.<name>`` is one of ``choices``."""
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < float("inf")


def config_from_dict(cls: type, data: Mapping[str, Any], where: str = "config") -> Any:
    """Builds a (possibly nested) config dataclass from its ``dataclasses.asdict`` form.

    Nested dataclass fields are built recursively and lists become tuples where the field is a
    tuple, so a config read back from ``config.json`` equals the one written.

    Args:
        cls: The config dataclass.
        data: Field name -> value.
        where: Where ``data`` came from, for error messages.

    Raises:
        ConfigError: An unknown field, or a value the config rejects; the message names it.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(unknown)} for {cls.__name__}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            nested = config_from_dict(hint, value, f"{where}.{name}")
            default = _field_default(cls, name)
            if default is not None:  # a partial record keeps the parent's default for the rest
                given = {k: getattr(nested, k) for k in value}
                nested = dataclasses.replace(default, **given)
            value = nested
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from err


def _field_default(cls: type, name: str) -> Any:
    """The default value of field ``name`` of dataclass ``cls`` (``None`` without one)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def replace_nested(config: Any, overrides: Mapping[str, Any]) -> Any:
    """``dataclasses.replace`` that also takes nested overrides (``{"ppo": {"lr": ...}}``)."""
    changes = {}
    for name, value in overrides.items():
        current = getattr(config, name)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = replace_nested(current, value)
        changes[name] = value
    return dataclasses.replace(config, **changes)
