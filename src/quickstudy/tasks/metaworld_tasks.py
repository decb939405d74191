"""Meta-World's ML1, ML10 and ML45 as task distributions (the ``metaworld`` extra).

A task is an index into Meta-World's own split: the benchmark object (built with a fixed seed,
so the split is the same on every machine) lists its training and test tasks, each an
environment class and a parameter vector; quickstudy's task {"task": i} is row i of
the training tasks followed by the test tasks, so train_set and test_set are exactly
Meta-World's split. ML10 and ML45 hold test classes never seen in training. Environments are
pooled per class and stepped on the host; info["success"] is Meta-World's success flag, so
the meta-test's success rate is the benchmark's metric. Episodes are Meta-World's 500 steps.
"""

from __future__ import annotations

import functools

import numpy as np

from quickstudy.errors import ConfigError
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.gymnasium_import import GymnasiumHost

ML1_ENV_NAMES = (
    "assembly-v3",
    "basketball-v3",
    "bin-picking-v3",
    "box-close-v3",
    "button-press-topdown-v3",
    "button-press-topdown-wall-v3",
    "button-press-v3",
    "button-press-wall-v3",
    "coffee-button-v3",
    "coffee-pull-v3",
    "coffee-push-v3",
    "dial-turn-v3",
    "disassemble-v3",
    "door-close-v3",
    "door-lock-v3",
    "door-open-v3",
    "door-unlock-v3",
    "hand-insert-v3",
    "drawer-close-v3",
    "drawer-open-v3",
    "faucet-open-v3",
    "faucet-close-v3",
    "hammer-v3",
    "handle-press-side-v3",
    "handle-press-v3",
    "handle-pull-side-v3",
    "handle-pull-v3",
    "lever-pull-v3",
    "pick-place-wall-v3",
    "pick-out-of-hole-v3",
    "pick-place-v3",
    "plate-slide-v3",
    "plate-slide-side-v3",
    "plate-slide-back-v3",
    "plate-slide-back-side-v3",
    "peg-insert-side-v3",
    "peg-unplug-side-v3",
    "soccer-v3",
    "stick-push-v3",
    "stick-pull-v3",
    "push-v3",
    "push-wall-v3",
    "push-back-v3",
    "reach-v3",
    "reach-wall-v3",
    "shelf-place-v3",
    "sweep-into-v3",
    "sweep-v3",
    "window-open-v3",
    "window-close-v3",
)
"""Meta-World 3.1.1's ML1 environments (``metaworld.ML1.ENV_NAMES``)."""
HORIZON = 500
GOALS = 50
"""Goals Meta-World draws per environment class (``metaworld._N_GOALS``)."""
SEED = 0


def _import_metaworld():
    try:
        import metaworld
    except ImportError as exc:
        raise ConfigError(
            'Meta-World is not installed: pip install "quickstudy[metaworld]" (metaworld==3.1.1)'
        ) from exc
    return metaworld


@functools.cache
def _tasks(kind: str, env_name: str | None) -> tuple:
    """Meta-World's training tasks followed by its test tasks (builds the benchmark).

    Raises:
        ConfigError: Meta-World built another number of tasks than :func:`_classes` implies.
    """
    metaworld = _import_metaworld()
    if kind == "ml1":
        bench = metaworld.ML1(env_name, seed=SEED)
    else:
        bench = (metaworld.ML10 if kind == "ml10" else metaworld.ML45)(seed=SEED)
    tasks = tuple(bench.train_tasks) + tuple(bench.test_tasks)
    train, test = _classes(kind, env_name)
    if len(tasks) != GOALS * (len(train) + len(test)):
        raise ConfigError(
            f"Meta-World {kind} built {len(tasks)} tasks, expected {GOALS} per class of "
            f"{len(train)} + {len(test)}: install metaworld==3.1.1"
        )
    return tasks


def _classes(kind: str, env_name: str | None) -> tuple[dict, dict]:
    """The benchmark's training and test environment classes, read without building it.

    Building a benchmark resets each class's environment 100 times to draw its goals (1–2 s
    per class, 27 s for ML45), so a distribution is described from Meta-World's class tables
    and builds its tasks when it first steps.
    """
    _import_metaworld()
    from metaworld import env_dict

    if kind == "ml1":
        classes = {env_name: env_dict.ALL_V3_ENVIRONMENTS[env_name]}
        return classes, classes
    split = env_dict.ML10_V3 if kind == "ml10" else env_dict.ML45_V3
    return dict(split["train"]), dict(split["test"])


def metaworld_tasks(kind: str, env_name: str | None = None, episodes: int = 2) -> TaskDistribution:
    """ML1 (of env_name), ML10 or ML45 with Meta-World's train/test split.

    Args:
        kind: "ml1", "ml10" or "ml45".
        env_name: The ML1 environment, e.g. "reach-v3".
        episodes: Episodes per trial for the in-context learners.
    """
    train_classes, test_classes = _classes(kind, env_name)
    classes = {**train_classes, **test_classes}
    n_train = GOALS * len(train_classes)
    n_test = GOALS * len(test_classes)

    def task(index) -> object:
        return _tasks(kind, env_name)[int(index)]

    def make_env(name: str):
        return classes[name]()

    def kind_of(params) -> str:
        return task(params["task"]).env_name

    def set_task(env, params) -> None:
        env.set_task(task(params["task"]))

    env = GymnasiumHost(
        make_env,
        set_task,
        HORIZON,
        kind=kind_of,
        success_key="success",
        probe_kind=next(iter(train_classes)),
    )
    index = np.arange(n_train + n_test, dtype=np.float32)
    name = f"ml1-{env_name.removesuffix('-v3')}" if kind == "ml1" else kind
    train_names = sorted(train_classes)
    test_names = sorted(test_classes)
    what = (
        f"{env_name}: {n_train} train / {n_test} test goal positions"
        if kind == "ml1"
        else f"{len(train_names)} train classes, {len(test_names)} held-out classes"
    )
    return TaskDistribution(
        name=name,
        env=env,
        description=f"Meta-World {kind.upper()} ({what}), H={HORIZON}; metric: success rate.",
        reward="Meta-World's shaped reward; info['success'] is the benchmark's success flag",
        episodes=episodes,
        train_set={"task": index[:n_train]},
        test_set={"task": index[n_train:]},
    )


FACTORIES = {
    f"ml1-{name.removesuffix('-v3')}": functools.partial(metaworld_tasks, "ml1", name)
    for name in ML1_ENV_NAMES
}
FACTORIES["ml10"] = functools.partial(metaworld_tasks, "ml10")
FACTORIES["ml45"] = functools.partial(metaworld_tasks, "ml45")
