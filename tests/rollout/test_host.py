"""The host seam: NumPy nav2d behind the host protocol, and the host collector, against JAX."""

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.navigation import GoalParams, HostPointNavigation, PointNavigation
from quickstudy.networks.recurrent import RecurrentActorCritic, recurrent_policy
from quickstudy.rollout.host import host_run_trials, host_unroll, init_host_rollout, make_host_actor
from quickstudy.rollout.scan import init_rollout, run_trials, unroll
from quickstudy.tasks.trial import HostTrial, Trial

RNG = np.random.default_rng(0)


def _goals(n):
    return GoalParams(RNG.uniform(-0.5, 0.5, size=(n, 2)).astype(np.float32))


def _jax_steps(env, goals, actions):
    """Steps the JAX env with fixed actions ``[T, N, A]`` (vmapped over tasks)."""
    state, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), len(goals.goal)), goals)
    out = [ts]
    for a in actions:
        keys = jax.random.split(jax.random.key(1), len(goals.goal))
        state, ts = jax.vmap(env.step)(keys, state, jnp.asarray(a), goals)
        out.append(ts)
    return out


def _host_steps(env, goals, actions):
    rng = np.random.default_rng(1)
    state, ts = env.reset(rng, goals)
    out = [ts]
    for a in actions:
        state, ts = env.step(rng, state, a, goals)
        out.append(ts)
    return out


def _assert_same_steps(jax_steps, host_steps):
    for a, b in zip(jax_steps, host_steps, strict=True):
        np.testing.assert_array_equal(np.asarray(a.obs), b.obs)
        np.testing.assert_array_equal(np.asarray(a.reward), b.reward)
        np.testing.assert_array_equal(np.asarray(a.terminated), b.terminated)
        np.testing.assert_array_equal(np.asarray(a.truncated), b.truncated)
        for k in a.info:
            np.testing.assert_array_equal(np.asarray(a.info[k]), b.info[k])


def _actions(goals, steps):
    """Random actions (many beyond the clip) that steer half of the points onto their goals."""
    noise = RNG.normal(0.0, 0.2, size=(steps, len(goals.goal), 2)).astype(np.float32)
    pos = np.zeros_like(goals.goal)
    out = []
    for t in range(steps):
        towards = np.clip(goals.goal - pos, -0.1, 0.1)
        a = np.where(np.arange(len(pos))[:, None] % 2 == 0, towards, noise[t])
        pos = pos + np.clip(a, -0.1, 0.1)
        out.append(a.astype(np.float32))
    return np.stack(out)


def test_numpy_nav2d_gives_the_jax_trajectories_from_the_same_actions():
    spec = PointNavigation(horizon=12, max_action=0.1, terminate_at_goal=True)
    goals = _goals(16)
    actions = _actions(goals, 12)
    jax_steps = _jax_steps(spec, goals, actions)
    assert np.asarray(jax_steps[-1].truncated).any()
    assert any(np.asarray(ts.terminated).any() for ts in jax_steps)  # goals were reached
    _assert_same_steps(jax_steps, _host_steps(HostPointNavigation(spec), goals, actions))


def test_host_trial_gives_the_trial_observations_and_episode_boundaries():
    spec = PointNavigation(horizon=4, max_action=0.1, sparse=True, goal_radius=0.3)
    goals = _goals(6)
    actions = _actions(goals, 13)  # three episodes of 4 steps, one into the fourth
    _assert_same_steps(
        _jax_steps(Trial(spec, 3), goals, actions),
        _host_steps(HostTrial(HostPointNavigation(spec), 3), goals, actions),
    )


def _collectors(horizon=5, batch=4, episodes=2):
    spec = PointNavigation(horizon=horizon, max_action=0.1, terminate_at_goal=True)
    net = RecurrentActorCritic(action_dim=2, discrete=False, hidden_size=8, separate_critic=True)
    policy = recurrent_policy(net, Trial(spec, episodes).observation_space(None).shape[0])

    def sample(key, n):
        return GoalParams(jax.random.uniform(key, (n, 2), minval=-0.5, maxval=0.5))

    jax_env = Trial(spec, episodes)
    host_env = HostTrial(HostPointNavigation(spec), episodes)
    return policy, sample, jax_env, host_env


def test_host_collector_returns_the_scan_collectors_transitions():
    policy, sample, jax_env, host_env = _collectors()
    params = policy.init(jax.random.key(0))
    state = init_rollout(jax.random.key(1), jax_env, sample, policy, 4)
    host_state = init_host_rollout(jax.random.key(1), host_env, sample, policy, 4)
    actor = make_host_actor(policy)
    ended = []
    for i in range(2):  # two unrolls of 7 steps: trial ends, new tasks and carries across them
        key = jax.random.key(10 + i)
        state, traj = jax.jit(
            lambda s, key=key: unroll(key, s, params, policy, jax_env, sample, 7)
        )(state)
        host_state, host_traj = host_unroll(key, host_state, params, actor, host_env, sample, 7)
        ended.append(np.asarray(traj.terminated).any())
        for name, a, b in zip(traj._fields, traj, host_traj, strict=True):
            jax.tree.map(
                lambda x, y, name=name: np.testing.assert_allclose(
                    np.asarray(y), np.asarray(x), rtol=1e-5, atol=1e-6, err_msg=name
                ),
                a,
                b,
            )
        np.testing.assert_allclose(host_state.task.goal, np.asarray(state.task.goal))
        np.testing.assert_allclose(host_state.obs, np.asarray(state.obs), rtol=1e-6, atol=1e-7)
    assert ended == [False, True]  # the second unroll crossed the end of the trials


def test_host_meta_test_trials_equal_the_jax_ones():
    policy, sample, jax_env, host_env = _collectors(horizon=6, episodes=3)
    params = policy.init(jax.random.key(0))
    tasks = sample(jax.random.key(5), 5)
    key = jax.random.key(6)
    ref = jax.jit(lambda p: run_trials(key, tasks, p, policy, jax_env, 3, 18))(params)
    got = host_run_trials(key, tasks, params, policy, make_host_actor(policy), host_env, 3, 18)
    np.testing.assert_allclose(got.returns, np.asarray(ref.returns), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got.lengths, np.asarray(ref.lengths))
    np.testing.assert_array_equal(got.success, np.asarray(ref.success))
