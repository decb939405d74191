import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from quickstudy.errors import CheckpointError, ConfigError
from quickstudy.tracking import latest_checkpoint, load_checkpoint, save_checkpoint


def _state(seed=0):
    params = {
        "dense": {
            "kernel": jnp.arange(6, dtype=jnp.float32).reshape(2, 3) + seed,
            "bias": jnp.full((3,), 0.5 + seed, jnp.float32),
        }
    }
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = opt.update(grads, opt_state, params)
    return {
        "params": params,
        "opt_state": opt_state,
        "key": jax.random.key(seed),
        "raw_key": jax.random.PRNGKey(seed + 1),
        "step": 10 + seed,
        "counters": {"env_steps": np.int64(1000 + seed), "episodes": jnp.asarray(3, jnp.int32)},
        "buffer": np.linspace(0.0, 1.0, 5) + seed,
        "nothing": None,
    }


def _assert_same(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(jax.random.key_data(x), jax.random.key_data(y))
        else:
            assert np.asarray(x).dtype == np.asarray(y).dtype
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip(tmp_path):
    state = _state(seed=1)
    path = save_checkpoint(tmp_path, 7, state)
    assert path.name == "ckpt_000000007.msgpack"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["step"] == 7 and len(meta["sha256"]) == 64
    restored = load_checkpoint(path, _state(seed=0))
    _assert_same(restored, state)
    # The restored key works as a key and gives the same stream as the original.
    np.testing.assert_array_equal(
        jax.random.normal(restored["key"], (3,)), jax.random.normal(state["key"], (3,))
    )
    # Restored NumPy arrays are writable copies.
    restored["buffer"][0] = 5.0


def test_latest_and_keep_last_n(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    for step in [100, 200, 300, 400, 500]:
        save_checkpoint(tmp_path, step, {"x": jnp.asarray(float(step))}, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "ckpt_000000400.json",
        "ckpt_000000400.msgpack",
        "ckpt_000000500.json",
        "ckpt_000000500.msgpack",
    ]
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "ckpt_000000500.msgpack"
    assert float(load_checkpoint(latest, {"x": jnp.asarray(0.0)})["x"]) == 500.0


def test_incomplete_checkpoint_is_not_latest(tmp_path):
    save_checkpoint(tmp_path, 1, {"x": jnp.zeros(2)})
    save_checkpoint(tmp_path, 2, {"x": jnp.ones(2)})
    (tmp_path / "ckpt_000000002.json").unlink()  # as if interrupted before the checksum
    assert latest_checkpoint(tmp_path).name == "ckpt_000000001.msgpack"
    with pytest.raises(CheckpointError, match="ckpt_000000002.msgpack.*incomplete"):
        load_checkpoint(tmp_path / "ckpt_000000002.msgpack", {"x": jnp.zeros(2)})


def test_corrupted_bytes(tmp_path):
    path = save_checkpoint(tmp_path, 3, _state())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match=r"ckpt_000000003\.msgpack is corrupted"):
        load_checkpoint(path, _state())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_truncated_bytes(tmp_path):
    path = save_checkpoint(tmp_path, 3, _state())
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path, _state())
    assert path.exists() and len(path.read_bytes()) == 20


def test_undecodable_bytes_with_matching_checksum(tmp_path):
    import hashlib

    path = save_checkpoint(tmp_path, 4, {"x": jnp.zeros(2)})
    garbage = b"\xc1\xc1not msgpack"
    path.write_bytes(garbage)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(garbage).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="cannot be decoded"):
        load_checkpoint(path, {"x": jnp.zeros(2)})


def test_missing(tmp_path):
    with pytest.raises(CheckpointError, match=r"ckpt_000000009\.msgpack does not exist"):
        load_checkpoint(tmp_path / "ckpt_000000009.msgpack", {"x": jnp.zeros(2)})


def test_wrong_structure(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"a": jnp.zeros(3), "b": {"c": jnp.ones(2)}})
    with pytest.raises(CheckpointError, match="missing /d"):
        load_checkpoint(path, {"a": jnp.zeros(3), "b": {"c": jnp.ones(2)}, "d": jnp.zeros(1)})
    with pytest.raises(CheckpointError, match="unexpected /b/c"):
        load_checkpoint(path, {"a": jnp.zeros(3), "b": {}})
    with pytest.raises(CheckpointError, match=r"/a: saved float32\[3\], expected float32\[4\]"):
        load_checkpoint(path, {"a": jnp.zeros(4), "b": {"c": jnp.ones(2)}})
    with pytest.raises(CheckpointError, match=r"/a: saved float32\[3\], expected int32\[3\]"):
        load_checkpoint(path, {"a": jnp.zeros(3, jnp.int32), "b": {"c": jnp.ones(2)}})
    assert path.exists()


def test_key_template_mismatch(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"key": jax.random.PRNGKey(0)})
    restored = load_checkpoint(path, {"key": jax.random.key(1)})
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.PRNGKey(0))
    path = save_checkpoint(tmp_path, 2, {"key": jax.random.key(0)})
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(path, {"key": jnp.zeros(3, jnp.uint32)})


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="keep"):
        save_checkpoint(tmp_path, 1, {"x": 1}, keep=0)
    with pytest.raises(ConfigError, match="step"):
        save_checkpoint(tmp_path, -1, {"x": 1})
