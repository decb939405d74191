"""Where a benchmark writes its JSON: ``benchmarks/results/<name>[_quick].json`` or ``--out``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(record: dict[str, Any], name: str, quick: bool, out: Path | None) -> Path:
    """Writes ``record`` as indented JSON, prints and returns the path."""
    path = out or Path(__file__).parent / "results" / f"{name}{'_quick' if quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")  # noqa: T201
    return path
