"""Render one reproduction table from cell records computed in separate output folders.

    python experiments/assemble_table.py pearl OUT TASK=FOLDER [TASK=FOLDER ...] \\
        [--provenance JSON_FILE]

Cells of a long reproduction are often run as separate commands, with their own ``--out`` (so
that two processes never write the same ``table.md``) or their own ``--methods``. Each such
folder holds ``cells/TASK.json`` and ``cells/TASK.npz``. This script reads the named cells, in
the table's order, and writes ``OUT/table.md``, ``OUT/table.json`` and the figures with
:func:`quickstudy.reproduce.render.write_outputs`, as ``quickstudy reproduce`` does. The
"Produced by" lines come from ``--provenance`` (a JSON object: commands, commits, machine,
date), since the cells came from several commands; ``assembled`` is added.

``docs/results/pearl-table.md`` and ``pearl-figure.png`` were made this way on 2026-12-06 from
``runs/reproduce-pearl`` (point robots, walker), ``runs/reproduce-pearl-cheetah`` (cheetah-vel),
``runs/reproduce-pearl-dir`` and ``runs/reproduce-pearl-hopper``. Its ant rows and
``pearl-figure-ants.png`` came the same way, later that day, from ``runs/reproduce-pearl-ant-dir``
and ``runs/reproduce-pearl-ant-goal``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quickstudy.reproduce import engine, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("table", choices=sorted(engine.TABLES))
    parser.add_argument("out", type=Path)
    parser.add_argument("cells", nargs="+", metavar="TASK=FOLDER")
    parser.add_argument("--provenance", type=Path, default=None)
    args = parser.parse_args()
    spec = engine.TABLES[args.table]
    folders = dict(pair.split("=", 1) for pair in args.cells)
    unknown = set(folders) - {cell.task for cell in spec.cells}
    if unknown:
        parser.error(f"not cells of {args.table}: {', '.join(sorted(unknown))}")
    records = []
    for cell in spec.cells:
        if cell.task in folders:
            path = Path(folders[cell.task]) / "cells" / f"{cell.task}.json"
            records.append(json.loads(path.read_text()))
    prov = json.loads(args.provenance.read_text()) if args.provenance else {}
    prov["assembled"] = (
        f"the {len(records)} cell records rendered by quickstudy.reproduce.render.write_outputs "
        "(experiments/assemble_table.py)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    render.write_outputs(spec, tuple(spec.methods), records, prov, args.out)
    print(f"{args.out / 'table.md'}: {', '.join(r['task'] for r in records)}")


if __name__ == "__main__":
    main()
