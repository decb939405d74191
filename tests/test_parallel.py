import json
import os
import sys

import pytest

from quickstudy import parallel
from quickstudy.cli import main

AFFINITY = "import json, os; print(json.dumps(sorted(os.sched_getaffinity(0))))"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_each_worker_runs_on_its_own_core_with_single_threaded_xla(tmp_path):
    cores = parallel.available_cores()
    workers = min(2, len(cores))
    script = AFFINITY + "; print(os.environ['XLA_FLAGS'])"
    jobs = [
        parallel.Job(f"j{i}", [sys.executable, "-c", script], tmp_path / f"j{i}.log")
        for i in range(3)
    ]
    events = []
    results = parallel.run_pinned(jobs, workers, on_event=events.append)
    assert [r.returncode for r in results] == [0, 0, 0]
    for r in results:
        affinity, flags = r.job.log.read_text().splitlines()
        assert json.loads(affinity) == [r.core]
        assert "--xla_cpu_multi_thread_eigen=false" in flags
    assert len({r.core for r in results[:workers]}) == workers
    assert sum(e.startswith("started") for e in events) == 3


def test_a_failing_job_is_reported_and_the_others_still_run(tmp_path):
    jobs = [
        parallel.Job("bad", [sys.executable, "-c", "import sys; sys.exit(7)"], tmp_path / "b.log"),
        parallel.Job("good", [sys.executable, "-c", "print('ok')"], tmp_path / "g.log"),
    ]
    results = parallel.run_pinned(jobs, 1)
    assert [r.returncode for r in results] == [7, 0]
    assert (tmp_path / "g.log").read_text() == "ok\n"
    with pytest.raises(ValueError, match="workers"):
        parallel.run_pinned(jobs, 0)


def test_reproduce_in_two_workers_gives_the_table_of_one_process(tmp_path, capsys):
    common = ["reproduce", "rl2-bandits", "--budget", "0", "--trials", "20"]
    common += ["--tune-trials", "8", "--cells", "bandit-k5-n10", "bandit-k10-n10"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "started bandit-k5-n10" in printed and "done: bandit-k10-n10" in printed
    one = json.loads((tmp_path / "one" / "table.json").read_text())
    two = json.loads((tmp_path / "two" / "table.json").read_text())

    def strip(cells):
        drop = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
        return [{name: drop(m) for name, m in c["methods"].items()} for c in cells]

    assert strip(two["cells"]) == strip(one["cells"])
    assert (tmp_path / "two" / "logs" / "bandit-k10-n10.log").exists()
    assert main([*common, "--out", str(tmp_path / "x"), "--jobs", "0"]) == 2


def test_reproduce_seeds_train_as_workers_and_the_cell_reuses_their_runs(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    common = ["reproduce", "rl2-bandits", "--budget", "1280", "--trials", "20", "--seeds", "2"]
    common += ["--cells", "bandit-k5-n10", "--methods", "random", "rl2", "--cache-dir", cache]
    assert main([*common, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "training 2 seeds of 1 cell(s) as 2 jobs" in printed
    for seed in (0, 1):
        log = (tmp_path / "two" / "logs" / f"bandit-k5-n10-seed{seed}.log").read_text()
        assert "training" in log and "meta-test" not in log.lower()
    assert printed.count("reusing the finished run") == 2  # the cell only meta-tests
    assert main([*common, "--out", str(tmp_path / "one")]) == 0  # same cache, one process
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    cells = [
        json.loads((tmp_path / out / "table.json").read_text())["cells"][0]["methods"]
        for out in ("two", "one")
    ]
    assert cells[0]["rl2"]["seeds"]["per_seed"] == cells[1]["rl2"]["seeds"]["per_seed"]
    assert cells[0]["rl2"]["seeds"]["seeds"] == [0, 1]
