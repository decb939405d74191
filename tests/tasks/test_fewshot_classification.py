import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageDraw

from quickstudy import tasks
from quickstudy.algorithms.maml import MAMLConfig, make_maml
from quickstudy.errors import ConfigError
from quickstudy.runner import train_program
from quickstudy.tasks import glyphs
from quickstudy.tasks.omniglot import CACHE_NAME, load_omniglot, omniglot


def test_glyph_drawings_are_fixed_and_classes_differ():
    render = jax.jit(glyphs.render)
    a, b = render(3, 7), render(3, 7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (28, 28, 1) and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert 0.03 < float(a.mean()) < 0.4  # some ink, mostly background
    same_class = float(jnp.abs(render(3, 7) - render(3, 8)).mean())
    other_class = float(jnp.abs(render(3, 7) - render(4, 7)).mean())
    assert same_class < other_class


def test_classification_sets_are_disjoint_labelled_and_split_by_class():
    dist = tasks.make("fewshot-glyphs-5way-1shot")
    train = dist.sample(jax.random.key(0), 50)
    test = dist.test_tasks(50)
    assert int(train.classes.max()) < glyphs.NUM_TRAIN_CLASSES <= int(test.classes.min())
    assert all(len(set(row)) == 5 for row in np.asarray(train.classes))  # distinct classes
    np.testing.assert_array_equal(dist.test_tasks(50).classes, test.classes)
    task = jax.tree.map(lambda x: x[0], train)
    support, query = jax.jit(lambda k: dist.sets(k, task, 1, 19))(jax.random.key(1))
    assert support.x.shape == (5, 28, 28, 1) and query.x.shape == (95, 28, 28, 1)
    np.testing.assert_array_equal(support.y, np.eye(5))
    np.testing.assert_array_equal(query.y.sum(0), [19] * 5)
    # Support and query hold all 20 drawings of each class exactly once.
    for i in range(5):
        imgs = np.concatenate([support.x[i : i + 1], query.x[i * 19 : (i + 1) * 19]])
        assert len({im.tobytes() for im in imgs}) == 20
    assert dist.max_query == 19


def _fixture(root, alphabets=2, characters=3, drawings=20, size=105):
    rng = np.random.default_rng(0)
    for folder in ("images_background", "images_evaluation"):
        for a in range(alphabets):
            for c in range(characters):
                char = root / folder / f"Alphabet_{a}" / f"character{c + 1:02d}"
                char.mkdir(parents=True)
                for d in range(drawings):
                    img = Image.new("1", (size, size), 1)  # white background, black ink
                    pts = rng.integers(10, size - 10, size=(3, 2))
                    ImageDraw.Draw(img).line([tuple(p) for p in pts], fill=0, width=6)
                    img.save(char / f"{c:04d}_{d + 1:02d}.png")


def test_omniglot_loader_reads_the_official_layout(tmp_path):
    _fixture(tmp_path)
    images, names = load_omniglot(tmp_path)
    assert images.shape == (12, 20, 28, 28) and images.dtype == np.uint8
    assert names[0] == "images_background/Alphabet_0/character01"
    assert names[-1] == "images_evaluation/Alphabet_1/character03"
    assert images.mean() < 128 and images.max() > 200  # ink is bright after inversion
    dist = omniglot(5, 1, root=tmp_path, num_train_classes=6)
    model = make_maml(MAMLConfig(total_steps=1, meta_batch_size=2, conv_channels=8), dist)
    state, _ = jax.jit(train_program(model))(jax.random.key(0))
    assert (tmp_path / CACHE_NAME).exists()
    result = jax.jit(model.meta_test, static_argnums=3)(
        state.params, jax.random.key(1), dist.test_tasks(3), 1
    )
    assert result.values.shape == result.extras["losses"].shape == (3, 2)
    assert result.metric == "accuracy" and result.higher_is_better
    assert int(dist.test_tasks(3).classes.min()) >= 6


def test_omniglot_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="classes"):
        _fixture(tmp_path / "small", alphabets=1, characters=2)
        omniglot(5, 1, root=tmp_path / "small", num_train_classes=2)
    with pytest.raises(ConfigError, match="images_background"):
        load_omniglot(tmp_path)
    with pytest.raises(ConfigError, match="QUICKSTUDY_OMNIGLOT_DIR"):
        make_maml(MAMLConfig(), omniglot(5, 1, root=tmp_path / "missing"))
    _fixture(tmp_path / "bad", alphabets=1, characters=2, drawings=3)
    next((tmp_path / "bad").rglob("*.png")).unlink()
    with pytest.raises(ConfigError, match="drawings"):
        load_omniglot(tmp_path / "bad")


def test_maml_on_glyphs_rejects_bad_settings():
    # Training and meta-testing on glyphs: tests/cli/test_cli_maml.py (through the CLI).
    dist = tasks.make("fewshot-glyphs-5way-1shot")
    with pytest.raises(ConfigError, match="oracle"):
        make_maml(MAMLConfig(variant="oracle"), dist)
    with pytest.raises(ConfigError, match="query_points"):
        make_maml(MAMLConfig(query_points=20), dist)


@pytest.mark.parametrize("name", [n for n in tasks.names("fewshot") if "omniglot" not in n])
def test_every_builtin_fewshot_task_samples_under_jit(name):
    dist = tasks.make(name)
    task = dist.sample_one(jax.random.key(0))
    support, query = jax.jit(lambda k: dist.sets(k, task, dist.shots, 2))(jax.random.key(1))
    ways = dist.output_dim if dist.loss == "xent" else 1
    assert support.x.shape == (dist.shots * ways, *dist.input_shape)
    assert query.x.shape[0] == 2 * ways
    assert np.isfinite(np.asarray(support.x)).all()
    info = dist.describe()
    assert info["name"] == name and info["shots"] == dist.shots
