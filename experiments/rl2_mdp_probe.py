"""Can RL²'s recurrent core learn per-state reward estimates when told the answer?

A supervised probe of the tabular-MDP plateau: the package's GRU reads exactly RL²'s inputs
(``Trial``'s one-hot state ⊕ one-hot previous action ⊕ previous reward ⊕ done) and is trained by
cross-entropy to name, at every step, the action the per-state myopic player would take (greedy
in the current state's posterior-mean rewards, prior N(1, 1)). The trials are played by that
player with half of its actions replaced by random ones, on MDPs sampled like
``mdp-s10-a5-n10``. For scale the script also reports how often the *pooled* player (one value
per action, ignoring the state) names the same action: a core that has learned only a bandit
strategy scores about that.

    python experiments/rl2_mdp_probe.py --hidden-size 64 --updates 1000 --out runs/probe.json

``--head-hidden-size`` puts a ReLU layer between the core and the read-out (RL²'s
``--head-hidden-size``): reading the current state's row of a table held in the core is a
product of two things in the core's state, which a linear read-out cannot form.
``--prev-obs`` also feeds the previous step's one-hot state, the one that the previous action
and reward belong to, so the core need not carry it over itself.
"""

from __future__ import annotations

import argparse
import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from quickstudy.envs.tabular_mdp import TabularMDP, sample_mdp
from quickstudy.networks.recurrent import GRU
from quickstudy.tasks.trial import Trial

S, A, HORIZON, EPISODES = 10, 5, 10, 10
PRIOR_MEAN, PRIOR_PRECISION = 1.0, 1.0
TRIAL = Trial(TabularMDP(S, A, HORIZON), EPISODES)


def play(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One trial on a fresh MDP: RL² inputs ``[L, D]``, targets ``[L]``, pooled choice ``[L]``."""
    k_task, k_reset, k_roll = jax.random.split(key, 3)
    mdp = jax.tree.map(lambda x: x[0], sample_mdp(k_task, 1, S, A))
    env_state, ts = TRIAL.reset(k_reset, mdp)

    def step(carry, k):
        env_state, obs, sums, counts = carry
        s = env_state.inner.s
        per_state = (PRIOR_MEAN * PRIOR_PRECISION + sums[s]) / (PRIOR_PRECISION + counts[s])
        pooled = (PRIOR_MEAN * PRIOR_PRECISION + sums.sum(0)) / (PRIOR_PRECISION + counts.sum(0))
        target = jnp.argmax(per_state)
        k_explore, k_action, k_step = jax.random.split(k, 3)
        explore = jax.random.uniform(k_explore) < 0.5
        a = jnp.where(explore, jax.random.randint(k_action, (), 0, A), target)
        env_state, ts = TRIAL.step(k_step, env_state, a, mdp)
        carry = (env_state, ts.obs, sums.at[s, a].add(ts.reward), counts.at[s, a].add(1.0))
        return carry, (obs, target, jnp.argmax(pooled))

    init = (env_state, ts.obs, jnp.zeros((S, A)), jnp.zeros((S, A)))
    _, out = jax.lax.scan(step, init, jax.random.split(k_roll, HORIZON * EPISODES))
    return out


class Probe(nn.Module):
    """RL²'s recurrent core with a linear action read-out, optionally behind a ReLU layer."""

    hidden_size: int
    head_hidden_size: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits ``[L, B, A]`` of inputs ``[L, B, D]``."""
        start = jnp.zeros(x.shape[:2], bool).at[0].set(True)
        h0 = jnp.zeros((x.shape[1], self.hidden_size))
        _, y = GRU(self.hidden_size)(h0, x, start)
        if self.head_hidden_size:
            y = nn.relu(nn.Dense(self.head_hidden_size)(y))
        return nn.Dense(A)(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--head-hidden-size", type=int, default=0)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=4e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="")
    parser.add_argument(
        "--prev-obs",
        action="store_true",
        help="also feed the previous one-hot state (not one of RL²'s inputs)",
    )
    args = parser.parse_args()

    def batch(key):
        x, y, pooled = jax.vmap(play)(jax.random.split(key, args.batch))
        x = jnp.swapaxes(x, 0, 1)
        if args.prev_obs:  # the state each step's action and reward belong to
            prev = jnp.concatenate([jnp.zeros_like(x[:1, :, :S]), x[:-1, :, :S]], 0)
            x = jnp.concatenate([x, prev], -1)
        return x, jnp.swapaxes(y, 0, 1), jnp.swapaxes(pooled, 0, 1)

    net = Probe(args.hidden_size, args.head_hidden_size)
    key = jax.random.key(args.seed)
    k_init, k_eval, key = jax.random.split(key, 3)
    x_eval, y_eval, pooled_eval = jax.jit(batch)(k_eval)
    params = net.init(k_init, x_eval)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(args.learning_rate))
    opt_state = opt.init(params)

    @jax.jit
    def update(params, opt_state, key):
        x, y, _ = batch(key)

        def loss(p):
            logits = net.apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, value

    accuracy = jax.jit(lambda p: (net.apply(p, x_eval).argmax(-1) == y_eval).mean())
    pooled_agreement = float((pooled_eval == y_eval).mean())
    curve, t0 = [], time.perf_counter()
    for i in range(1, args.updates + 1):
        params, opt_state, loss = update(params, opt_state, jax.random.fold_in(key, i))
        if i % max(1, args.updates // 10) == 0:
            curve.append(dict(update=i, loss=float(loss), accuracy=float(accuracy(params))))
            print(
                f"update {i:6d}  steps {i * args.batch * HORIZON * EPISODES / 1e6:6.1f} M  "
                f"loss {curve[-1]['loss']:.3f}  held-out accuracy {curve[-1]['accuracy']:.3f}  "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    print(f"pooled player's agreement with the per-state target: {pooled_agreement:.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(vars(args), pooled_agreement=pooled_agreement, curve=curve), f, indent=2)


if __name__ == "__main__":
    main()
