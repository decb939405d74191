"""The documentation site builds in strict mode: a broken link, a page missing from the nav or a
docstring that griffe cannot parse fails the build."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr}\n{proc.stdout}"

    assert (site / "index.html").is_file()
    guide = site / "guide" / "tasks" / "index.html"
    assert guide.is_file()
    assert "sparse-point-robot" in guide.read_text(encoding="utf-8")
    api = site / "api" / "types" / "index.html"
    assert api.is_file()
    # mkdocstrings rendered the module, not just the page's title.
    assert "MetaTestResult" in api.read_text(encoding="utf-8")
    for page in ("runner", "algorithms", "learners", "rollout", "tracking"):
        assert (site / "api" / page / "index.html").is_file(), page
