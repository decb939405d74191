import jax
import jax.numpy as jnp
import numpy as np
import optax

from quickstudy.learners.base import clip_by_group_norm, make_optimizer
from quickstudy.networks.recurrent import RecurrentActorCritic, param_groups
from quickstudy.types import PARAM_GROUPS

GRADS = {
    "params": {
        "core": {"kernel": jnp.full((4,), 0.1)},  # norm 0.2
        "policy": {"kernel": jnp.full((2,), 0.1)},  # actor norm sqrt(0.06)
        "critic_core": {"kernel": jnp.full((4,), 3.0)},  # norm 6
        "value": {"kernel": jnp.full((1,), 8.0)},  # critic norm 10
    }
}


def _norm(tree):
    return float(optax.tree.norm(tree))


def test_each_group_is_clipped_by_its_own_norm():
    clip = clip_by_group_norm(0.5, param_groups, PARAM_GROUPS)
    out, _ = clip.update(GRADS, clip.init(GRADS))
    p = out["params"]
    # The critic (norm 10) is scaled to 0.5; the actor (norm 0.245) is left as it is.
    np.testing.assert_allclose(_norm({k: p[k] for k in ("critic_core", "value")}), 0.5, rtol=1e-5)
    np.testing.assert_allclose(p["core"]["kernel"], GRADS["params"]["core"]["kernel"])
    np.testing.assert_allclose(p["policy"]["kernel"], GRADS["params"]["policy"]["kernel"])
    # One global norm instead shrinks the actor's gradient by the critic's size.
    glob = optax.clip_by_global_norm(0.5)
    g, _ = glob.update(GRADS, glob.init(GRADS))
    assert _norm(g["params"]["core"]) < 0.05 * _norm(GRADS["params"]["core"])


def test_one_label_is_the_global_clip():
    ours = clip_by_group_norm(0.5, lambda t: jax.tree.map(lambda _: "all", t), ("all",))
    a, _ = ours.update(GRADS, ours.init(GRADS))
    glob = optax.clip_by_global_norm(0.5)
    b, _ = glob.update(GRADS, glob.init(GRADS))
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), a, b)


def test_network_labels_every_value_path_module_critic_and_the_rest_actor():
    net = RecurrentActorCritic(
        3,
        True,
        hidden_size=8,
        separate_critic=True,
        reward_head=True,
        head_hidden_size=4,
        critic_hidden_size=4,
    )
    h0 = net.initial_state(1)
    params = net.init(jax.random.key(0), h0, jnp.zeros((1, 1, 5)), jnp.ones((1, 1), bool))
    labels = param_groups(params)["params"]
    top = {name: set(jax.tree.leaves(sub)) for name, sub in labels.items()}
    assert top == {
        "core": {"actor"},
        "head_hidden": {"actor"},
        "policy": {"actor"},
        "reward": {"actor"},
        "critic_core": {"critic"},
        "value": {"critic"},
    }

    # The policy's outputs do not depend on any parameter labelled critic.
    def policy_out(p):
        return net.apply(p, h0, jnp.ones((2, 1, 5)), jnp.ones((2, 1), bool))[1].dist.sum()

    grads = jax.grad(policy_out)(params)["params"]
    for name, sub in grads.items():
        if top[name] == {"critic"}:
            assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(sub))


def test_make_optimizer_with_groups_steps_the_actor_as_if_the_critic_were_absent():
    params = jax.tree.map(jnp.zeros_like, GRADS)
    grouped = make_optimizer(0.1, 0.5, 1e-8, param_groups, PARAM_GROUPS)
    actor_only = {"params": {k: GRADS["params"][k] for k in ("core", "policy")}}
    alone = make_optimizer(0.1, 0.5, 1e-8)
    u, _ = grouped.update(GRADS, grouped.init(params), params)
    v, _ = alone.update(actor_only, alone.init(actor_only), actor_only)
    for k in ("core", "policy"):
        np.testing.assert_allclose(u["params"][k]["kernel"], v["params"][k]["kernel"], rtol=1e-6)
