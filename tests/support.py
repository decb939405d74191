"""Reference facts that several tests check results against."""

import numpy as np


def nav2d_return_bound(goals: np.ndarray, horizon: int = 100, max_action: float = 0.1):
    """The highest episode return any policy can get on each nav2d goal ``[N, 2]`` -> ``[N]``.

    After ``t`` steps the point is at most ``t * max_action * sqrt(2)`` from the origin, so the
    reward of step ``t`` (minus the distance to the goal) is at most
    ``-max(0, |g| - t * max_action * sqrt(2))``; an episode that ends early only drops terms.
    """
    reach = max_action * np.sqrt(2.0) * np.arange(1, horizon + 1)
    dist = np.linalg.norm(np.asarray(goals, np.float64), axis=-1)
    return -np.maximum(dist[:, None] - reach[None, :], 0.0).sum(axis=1)
