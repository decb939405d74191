"""Generated bad input: the CLI answers with exit status 2 and a message, never a traceback."""

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quickstudy import cli, runner
from quickstudy.algorithms import registry
from quickstudy.errors import QuickstudyError
from quickstudy.tracking import MetricsLogger

VALUES = st.one_of(
    st.sampled_from(["", "nan", "-nan", "inf", "-inf", "1e400", "-1", "0", "1e9", "1e30", "0.5"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)
RUN_OPTIONS = ["--seed", "--eval-tasks", "--chunk-updates", "--checkpoint-every"]


def _flags(algo):
    spec = registry.get(algo)
    return [o.flag for o in cli._options(spec.config_cls)] + RUN_OPTIONS


@pytest.mark.parametrize("algo", list(registry.ALGORITHMS))
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_train_options_take_any_value_without_a_traceback(algo, data, tmp_path, capsys):
    flag = data.draw(st.sampled_from(_flags(algo)), label="flag")
    value = data.draw(VALUES, label="value")
    argv = ["train", algo, f"{flag}={value}", "--runs-root", str(tmp_path), "--dry-run"]
    status = cli.main(argv)  # an uncaught exception fails the test: that is a traceback
    err = capsys.readouterr().err
    assert status in (0, 2), err
    if status == 2:
        field = flag.removeprefix("--").replace("-", "_")
        assert flag in err or field in err, err
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    argv=st.lists(st.one_of(VALUES, st.sampled_from(["--out", "--seed", "-h", "x"])), max_size=4)
)
def test_commands_take_any_arguments_without_a_traceback(argv, tmp_path, capsys):
    for command in ("evaluate", "resume", "reproduce", "tasks", "nonsense"):
        status = cli.main([command, str(tmp_path / "missing"), *argv])
        assert status in (0, 2), capsys.readouterr().err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    args = ["train", "maml", "--total-steps", "4", "--meta-batch-size", "2", "--hidden-size", "4"]
    args += ["--chunk-updates", "2", "--checkpoint-every", "1", "--test-steps", "1"]
    assert cli.main([*args, "--eval-tasks", "2", "--run-dir", str(run_dir)]) == 0
    return run_dir


CORRUPTIONS = st.sampled_from(["truncate", "flip", "replace", "empty", "garbage-line"])


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_corrupt_run_files_give_an_error_that_names_them(finished, data, tmp_path):
    run_dir = tmp_path / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(finished, run_dir)
    files = sorted(
        p for p in run_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".msgpack")
    )
    path = data.draw(st.sampled_from(files), label="file")
    how = data.draw(CORRUPTIONS, label="how")
    raw = path.read_bytes()
    at = data.draw(st.integers(0, max(len(raw) - 1, 0)), label="at")
    if how == "truncate":
        raw = raw[:at]
    elif how == "flip":
        raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    elif how == "replace":
        raw = data.draw(st.binary(max_size=64))
    elif how == "empty":
        raw = b""
    else:
        raw = raw + data.draw(st.binary(min_size=1, max_size=32)) + b"\n"
    path.write_bytes(raw)
    try:  # what `resume` and `evaluate` do before any training or meta-test
        run = runner.open_run(run_dir)
        state, done = runner.restore_latest(run)
        runner.check_resumable(run, done)
        with MetricsLogger(run_dir, tensorboard=False):
            pass
    except QuickstudyError as err:  # reported as "error: ..." with exit status 2
        named = {path.name, path.parent.name, run_dir.name}
        assert any(name in str(err) for name in named), (path, how, str(err))
