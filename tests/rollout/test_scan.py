import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.envs.navigation import GoalParams, PointNavigation
from quickstudy.networks.recurrent import RecurrentActorCritic, recurrent_policy
from quickstudy.rollout.scan import init_rollout, unroll


def _setup(horizon=5, batch=3):
    env = PointNavigation(horizon=horizon)
    net = RecurrentActorCritic(action_dim=2, discrete=False, hidden_size=8)
    policy = recurrent_policy(net, 2)

    def sample(key, n):
        return GoalParams(jax.random.uniform(key, (n, 2), minval=-0.5, maxval=0.5))

    params = policy.init(jax.random.key(0))
    state = init_rollout(jax.random.key(1), env, sample, policy, batch)
    return env, policy, sample, params, state


def test_unroll_bootstraps_truncated_steps_from_the_cut_observation():
    env, policy, sample, params, state = _setup()
    T = 12
    _, traj = jax.jit(lambda s: unroll(jax.random.key(2), s, params, policy, env, sample, T))(state)
    # truncated exactly at t = 4 and t = 9 (horizon 5); new tasks and memory resets follow.
    np.testing.assert_array_equal(traj.truncated[:, 0], [t in (4, 9) for t in range(T)])
    np.testing.assert_array_equal(traj.start[:, 0], [t in (0, 5, 10) for t in range(T)])
    # Replay the whole sequence: outputs at non-boundary steps are the next step's values.
    h0 = policy.init_carry(3)
    _, out = policy.apply(params, h0, traj.obs, traj.start)
    np.testing.assert_allclose(out.value, traj.value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traj.next_value[:3], traj.value[1:4], rtol=1e-5, atol=1e-6)
    # At the truncated step t=4 the bootstrap is V of the pre-reset position s_5 = s_4 + a_4.
    pos5 = traj.obs[4] + jnp.clip(traj.action[4], -0.1, 0.1)
    np.testing.assert_allclose(traj.next_obs[4], pos5, rtol=1e-6)
    seq = jnp.concatenate([traj.obs[:5], pos5[None]], 0)
    start = jnp.zeros((6, 3), bool).at[0].set(True)
    _, out = policy.apply(params, h0, seq, start)
    np.testing.assert_allclose(traj.next_value[4], out.value[5], rtol=1e-5, atol=1e-6)
    assert not np.allclose(traj.next_value[4], traj.value[5])


def test_new_task_after_each_episode_and_returns_recorded():
    env, policy, sample, params, state = _setup(horizon=3, batch=2)
    new_state, traj = unroll(jax.random.key(3), state, params, policy, env, sample, 7)
    done_steps = np.flatnonzero(np.asarray(traj.truncated[:, 0]))
    np.testing.assert_array_equal(done_steps, [2, 5])
    ret = np.asarray(traj.reward[:3, 0]).sum()
    np.testing.assert_allclose(traj.info["episode_return"][2, 0], ret, rtol=1e-6)
    assert float(traj.info["episode_return"][0, 0]) == 0.0
    np.testing.assert_allclose(new_state.episode_return[0], traj.reward[6, 0], rtol=1e-6)
