"""The bad inputs of issue 20, re-run against a source tree: exit status, message, damage.

    python experiments/bad_inputs.py --src src --out docs/results/data/bad-inputs-after.json
    git worktree add /tmp/before abb6b2d
    python experiments/bad_inputs.py --src /tmp/before/src \
        --out docs/results/data/bad-inputs-before.json

Each case runs ``python -m quickstudy.cli ...`` with ``PYTHONPATH=<src>`` in a fresh folder and
records the exit status, the last line the command printed, whether a traceback reached the user
and what it left behind (non-strict JSON, lost or duplicated metric rows, a checkpoint whose name
disagrees with its content, a replaced meta-test, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--total-steps", "960", "--num-envs", "8", "--hidden-size", "16", "--num-minibatches", "2"]
LONG = ["--total-steps", "1280000", "--chunk-updates", "10", "--checkpoint-every", "2"]


class Case:
    def __init__(self, src: Path, root: Path) -> None:
        self.src, self.root = src, root
        self.env = dict(os.environ, PYTHONPATH=str(src), QUICKSTUDY_PROGRESS="0")
        self.env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def cli(self, *args: str, wait: bool = True):
        cmd = [sys.executable, "-m", "quickstudy.cli", *args]
        if not wait:
            return subprocess.Popen(
                cmd,
                env=self.env,
                cwd=self.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env, cwd=self.root, capture_output=True, text=True)
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0

    def py(self, code: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            capture_output=True,
            text=True,
            cwd=self.root,
        )
        return proc.stdout.strip() or proc.stderr.strip()[-300:]


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in lines:  # the first error line says more than the usage after it
        if ln.startswith("error") or "Error" in ln:
            return ln[:240]
    return lines[-1][:240] if lines else ""


def _strict(path: Path) -> bool:
    def refuse(constant):
        raise ValueError(constant)

    try:
        for line in path.read_text().splitlines():
            json.loads(line, parse_constant=refuse)
    except (ValueError, FileNotFoundError):
        return False
    return True


def _updates(run: Path) -> list[int]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    return [int(r["update"]) for r in rows]


def _ckpt_state(case: Case, run: Path) -> str:
    code = (
        "from quickstudy import runner;from quickstudy.tracking import latest_checkpoint as l;"
        f"r=runner.open_run({str(run)!r});c=l(r.path/'checkpoints');"
        "s=runner.load_state(r,c);print(c.name, int(s.update))"
    )
    return case.py(code)


def run_cases(case: Case) -> list[dict]:
    out = []

    def record(name, status, text, seconds=None, **damage):
        row = {
            "case": name,
            "status": status,
            "message": _last(text),
            "traceback": "Traceback" in text,
            **damage,
        }
        if seconds is not None:
            row["seconds"] = round(seconds, 1)
        out.append(row)
        print(json.dumps(row), flush=True)

    r = case.root
    for name, flag, value in [
        ("lr inf", "--learning-rate", "inf"),
        ("ent-coef nan", "--ent-coef", "nan"),
    ]:
        run = r / name.replace(" ", "-")
        status, text, s = case.cli("train", "rl2", flag, value, "--run-dir", str(run), *TINY)
        record(
            f"train rl2 {flag} {value}",
            status,
            text,
            s,
            run_dir_created=run.exists(),
            metrics_strict_json=_strict(run / "metrics.jsonl") if run.exists() else None,
        )

    run = r / "lr1e6"
    status, text, s = case.cli(
        "train",
        "rl2",
        "--learning-rate",
        "1e6",
        "--run-dir",
        str(run),
        "--total-steps",
        "128000",
        "--chunk-updates",
        "10",
    )
    rows = [
        json.loads(ln, parse_constant=lambda c: None)
        for ln in (run / "metrics.jsonl").read_text().splitlines()
    ]
    bad = [
        i
        for i, row in enumerate(rows)
        if row.get("nonfinite") or any(v is None for v in row.values())
    ]
    record(
        "train rl2 --learning-rate 1e6 (100 updates)",
        status,
        text,
        s,
        warned="warning" in text,
        rows_logged=len(rows),
        updates_after_first_nonfinite=(len(rows) - 1 - bad[0]) if bad else None,
        metrics_strict_json=_strict(run / "metrics.jsonl"),
    )

    run = r / "maml"
    status, text, s = case.cli(
        "train",
        "maml",
        "--inner-lr",
        "1e3",
        "--run-dir",
        str(run),
        "--total-steps",
        "2000",
        "--meta-batch-size",
        "4",
    )
    record(
        "train maml --inner-lr 1e3 (2000 iterations)",
        status,
        text,
        s,
        rows_logged=len((run / "metrics.jsonl").read_text().splitlines()),
        metrics_strict_json=_strict(run / "metrics.jsonl"),
    )

    # SIGINT during a chunk.
    run = r / "sigint"
    proc = case.cli("train", "rl2", "--run-dir", str(run), *LONG, wait=False)
    while not (run / "metrics.jsonl").exists() or len(_updates(run)) < 20:
        time.sleep(0.05)
    time.sleep(0.15)  # inside a chunk of 10 updates (~0.3 s)
    proc.send_signal(signal.SIGINT)
    t0 = time.perf_counter()
    stdout, stderr = proc.communicate()
    answer = time.perf_counter() - t0
    ckpt = _ckpt_state(case, run)
    rows_before = len(_updates(run))
    status2, text2, _ = case.cli("resume", str(run))
    ups = _updates(run)
    record(
        "SIGINT during a chunk, then resume",
        proc.returncode,
        stdout + stderr,
        answer_s=round(answer, 2),
        checkpoint_name_and_update=ckpt,
        rows_after_sigint=rows_before,
        resume_status=status2,
        rows_missing=len(set(range(1, 1001)) - set(ups)),
        rows_duplicated=len(ups) - len(set(ups)),
    )

    # Two resumes of one run, 3 s apart.
    run = r / "two"
    case.cli(
        "train",
        "rl2",
        "--run-dir",
        str(run),
        "--total-steps",
        "256000",
        "--chunk-updates",
        "10",
        "--checkpoint-every",
        "2",
    )
    ckpts = sorted((run / "checkpoints").glob("ckpt_*.msgpack"))
    for c in ckpts[1:]:  # back to the oldest kept checkpoint (update 160 of 200)
        c.unlink()
        c.with_suffix(".json").unlink()
    a = case.cli("resume", str(run), wait=False)
    time.sleep(3)
    b = case.cli("resume", str(run), wait=False)
    _ta, tb = a.communicate(), b.communicate()
    ups = _updates(run)
    record(
        "two resumes 3 s apart",
        f"{a.returncode},{b.returncode}",
        tb[0] + tb[1],
        rows_duplicated=len(ups) - len(set(ups)),
        rows_out_of_order=sum(1 for x, y in zip(ups, ups[1:], strict=False) if y <= x),
    )

    # A finished tiny run for the evaluate/resume cases.
    run = r / "tiny"
    case.cli(
        "train",
        "rl2",
        "--run-dir",
        str(run),
        *TINY,
        "--chunk-updates",
        "2",
        "--checkpoint-every",
        "2",
    )
    own = (run / "eval" / "summary.json").read_bytes()
    status, text, _ = case.cli("evaluate", str(run), "--tasks", "-1")
    record("evaluate RUN --tasks -1", status, text)
    status, text, _ = case.cli("evaluate", str(run), "--seed", "-1")
    record("evaluate RUN --seed -1", status, text)
    status, text, _ = case.cli("evaluate", str(run), "--tasks", "1")
    record(
        "evaluate RUN --tasks 1",
        status,
        text,
        run_meta_test_replaced=(run / "eval" / "summary.json").read_bytes() != own,
    )
    file = r / "a-file"
    file.write_text("x")
    status, text, _ = case.cli("train", "rl2", "--run-dir", str(file), *TINY)
    record("train --run-dir EXISTING_FILE", status, text)
    modes = {
        p.name: oct(p.stat().st_mode & 0o777)
        for p in [run / "config.json", run / "metrics.jsonl", run / "eval" / "summary.json"]
    }
    record("file modes", 0, "", modes=modes)

    import shutil

    for name, edit in [
        (
            "truncated metrics.jsonl",
            lambda d: (d / "metrics.jsonl").write_text(
                "".join((d / "metrics.jsonl").read_text().splitlines(True)[:5])
            ),
        ),
        (
            "corrupt latest checkpoint",
            lambda d: sorted((d / "checkpoints").glob("*.msgpack"))[-1].write_bytes(b"junk"),
        ),
        ("config.json num_envs='abc'", lambda d: _edit_config(d, "num_envs", "abc")),
        (
            "config.json total_steps below the checkpoint",
            lambda d: _edit_config(d, "total_steps", 160),
        ),
    ]:
        d = r / name.replace(" ", "_").replace("'", "").replace("=", "")
        shutil.copytree(run, d)
        edit(d)
        status, text, _ = case.cli("resume", str(d))
        extra = {}
        if name.startswith("truncated"):
            ups = _updates(d)
            extra["rows_missing_after_resume"] = len(set(range(1, 13)) - set(ups))
        record(f"resume with {name}", status, text, **extra)

    status, text, _ = case.cli(
        "train",
        "rl2",
        "--total-steps",
        "1000",
        "--run-dir",
        str(r / "round"),
        "--num-envs",
        "8",
        "--hidden-size",
        "8",
    )
    record(
        "train rl2 --total-steps 1000 --num-envs 8 (80 steps per update: rounding)",
        status,
        text,
        rounding_noted="not a multiple" in text or "rounded" in text,
    )
    status, text, _ = case.cli("train", "rl2", "--help")
    record(
        "train rl2 --help",
        status,
        "",
        lines=len(text.splitlines()),
        markup=("``" in text) or (":class:" in text),
        default_none="(default: None)" in text,
    )
    return out


def _edit_config(run: Path, field: str, value) -> None:
    record = json.loads((run / "config.json").read_text())
    record["config"][field] = value
    (run / "config.json").write_text(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True, help="the src/ folder of the tree to test")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_cases(Case(Path(args.src).resolve(), Path(tmp)))
    Path(args.out).write_text(json.dumps({"src": args.src, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
