"""Registry of named task distributions.

Names are versioned by definition: a change to a task's dynamics, reward or ranges gets a new name,
never a silent edit of an existing one.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable

import jax
import numpy as np

from quickstudy.envs.bandit import BernoulliBandit, sample_bandit
from quickstudy.envs.navigation import GoalParams, HostPointNavigation, PointNavigation
from quickstudy.envs.tabular_mdp import TabularMDP, sample_mdp
from quickstudy.errors import UnknownNameError
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.fewshot import FewShotTasks, glyphs, sinusoid
from quickstudy.tasks.gymnasium_import import from_gymnasium
from quickstudy.tasks.locomotion import FACTORIES as LOCOMOTION
from quickstudy.tasks.mazes import FACTORIES as MAZES
from quickstudy.tasks.metaworld_tasks import FACTORIES as METAWORLD
from quickstudy.tasks.omniglot import omniglot

AnyTasks = TaskDistribution | FewShotTasks
_REGISTRY: dict[str, Callable[[], AnyTasks]] = {}


def register(name: str, factory: Callable[[], AnyTasks]) -> None:
    """Registers ``factory`` under ``name``; names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is already registered")
    _REGISTRY[name] = factory


def names(kind: str | None = None) -> list[str]:
    """Registered task names, in registration order.

    Args:
        kind: ``"rl"`` for RL task distributions, ``"fewshot"`` for supervised ones, ``None``
            for all.
    """
    if kind is None:
        return list(_REGISTRY)
    if kind not in ("rl", "fewshot"):
        raise ValueError(f"kind must be 'rl', 'fewshot' or None, got {kind!r}")
    cls = TaskDistribution if kind == "rl" else FewShotTasks
    return [name for name in _REGISTRY if isinstance(make(name), cls)]


@functools.cache
def make(name: str) -> AnyTasks:
    """Builds the task distribution registered as ``name``.

    RL task distributions are :class:`TaskDistribution`; supervised few-shot ones
    (``sinusoid-k*``) are :class:`FewShotTasks`.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the valid names.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown task {name!r}.{hint} Valid tasks: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]()


def _bandit(k: int, n: int) -> TaskDistribution:
    return TaskDistribution(
        name=f"bandit-k{k}-n{n}",
        env=BernoulliBandit(k),
        description=f"Bernoulli bandit, {k} arms, p_i ~ U[0,1]; a trial is {n} pulls (RL²).",
        reward="r ~ Bernoulli(p[a]); metric: total reward over the trial",
        episodes=n,
        sampler=functools.partial(sample_bandit, num_arms=k),
    )


def _mdp(n: int) -> TaskDistribution:
    return TaskDistribution(
        name=f"mdp-s10-a5-n{n}",
        env=TabularMDP(10, 5, 10),
        description=(
            f"Tabular MDP |S|=10 |A|=5, T=10 from state 0, P ~ Dir(1), R ~ N(1,1); "
            f"a trial is {n} episodes (RL²)."
        ),
        reward="r ~ N(R(s,a), 1); metric: total reward over the trial",
        episodes=n,
        sampler=functools.partial(sample_mdp, num_states=10, num_actions=5),
    )


def _nav2d(host: bool = False) -> TaskDistribution:
    def sampler(key, n):
        return GoalParams(jax.random.uniform(key, (n, 2), minval=-0.5, maxval=0.5))

    env = PointNavigation(horizon=100, max_action=0.1, terminate_at_goal=True)
    where = " Stepped on the host in NumPy (the host collector's reference)." if host else ""
    return TaskDistribution(
        name="nav2d-numpy" if host else "nav2d",
        env=HostPointNavigation(env) if host else env,
        description="MAML 2-D navigation: start (0,0), goal ~ U[-0.5,0.5]^2, H=100." + where,
        reward="-||s' - g||_2; s' = s + clip(a, -0.1, 0.1); done when |dx|,|dy| < 0.01",
        episodes=2,
        sampler=sampler,
        num_test=40,
    )


def _split(goals: np.ndarray, num_train: int) -> tuple[GoalParams, GoalParams]:
    goals = goals.astype(np.float32)
    return GoalParams(goals[:num_train]), GoalParams(goals[num_train:])


def _point_robot(host: bool = False, random_start: bool = False) -> TaskDistribution:
    # 100 goals ~ U[-1,1]^2 drawn (x, y per task) from a NumPy RandomState seeded 1337.
    goals = np.random.RandomState(1337).uniform(-1.0, 1.0, size=(100, 2))
    train, test = _split(goals, 80)
    env = PointNavigation(
        horizon=20, max_action=0.1, goal_radius=0.2, start_range=1.0 if random_start else 0.0
    )
    where = " Stepped on the host in NumPy (the host collector's reference)." if host else ""
    name = "point-robot-numpy" if host else "point-robot"
    start = "start at the origin"
    if random_start:
        name, start = "point-robot-random-start", "start ~ U[-1,1]^2 each episode (the authors')"
    return TaskDistribution(
        name=name,
        env=HostPointNavigation(env) if host else env,
        description=(
            f"PEARL point robot: goal ~ U[-1,1]^2, {start}, 80 train / 20 test goals, H=20." + where
        ),
        reward="-||s' - g||_2; s' = s + clip(a, -0.1, 0.1)",
        episodes=3,
        train_set=train,
        test_set=test,
    )


def _sparse_point_robot() -> TaskDistribution:
    angles = np.linspace(0.0, np.pi, num=100)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.random.RandomState(1337).shuffle(goals)
    train, test = _split(goals, 80)
    return TaskDistribution(
        name="sparse-point-robot",
        env=PointNavigation(horizon=20, max_action=0.1, sparse=True, goal_radius=0.2),
        description="PEARL sparse point robot: goals on the unit half-circle, 80/20, H=20.",
        reward="1 - ||s' - g||_2 if ||s' - g||_2 <= 0.2 else 0",
        episodes=3,
        train_set=train,
        test_set=test,
    )


for _k in (5, 10, 50):
    for _n in (10, 100, 500):
        register(f"bandit-k{_k}-n{_n}", functools.partial(_bandit, _k, _n))
for _n in (10, 25, 50, 75, 100):
    register(f"mdp-s10-a5-n{_n}", functools.partial(_mdp, _n))
register("nav2d", _nav2d)
register("nav2d-numpy", functools.partial(_nav2d, host=True))
register("point-robot", _point_robot)
register("point-robot-numpy", functools.partial(_point_robot, host=True))
register("point-robot-random-start", functools.partial(_point_robot, random_start=True))
register("sparse-point-robot", _sparse_point_robot)


def _pendulum_gravity() -> TaskDistribution:
    import gymnasium

    def set_gravity(env, task):
        env.unwrapped.g = float(task["g"])

    return from_gymnasium(
        "pendulum-gravity",
        make_env=lambda: gymnasium.make("Pendulum-v1"),
        sample_tasks=lambda rng, n: {"g": rng.uniform(5.0, 15.0, n)},
        set_task=set_gravity,
        horizon=200,
        episodes=2,
        description=(
            "Gymnasium's Pendulum-v1 with gravity g ~ U[5, 15] per task (the example of "
            "importing a Gymnasium environment), H=200."
        ),
        reward="-(θ² + 0.1 θ'² + 0.001 u²)",
    )


register("pendulum-gravity", _pendulum_gravity)
for _name, _factory in LOCOMOTION.items():
    register(_name, _factory)
for _name, _factory in METAWORLD.items():
    register(_name, _factory)
for _name, _factory in MAZES.items():
    register(_name, _factory)
for _shots in (5, 10, 20):
    register(f"sinusoid-k{_shots}", functools.partial(sinusoid, _shots))
for _ways in (5, 20):
    for _shots in (1, 5):
        _suffix = f"{_ways}way-{_shots}shot"
        register(f"fewshot-glyphs-{_suffix}", functools.partial(glyphs, _ways, _shots))
        register(f"fewshot-omniglot-{_suffix}", functools.partial(omniglot, _ways, _shots))

__all__ = ["make", "names", "register"]
