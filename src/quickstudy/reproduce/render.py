"""The outputs of a reproduction: ``table.md``, ``table.json``, ``figure.png``, ``learning.png``.

Three views of the same cell records: ``score`` tables (one number per method and cell, the best
in bold; a bar figure), ``adaptation`` tables (the metric after each adaptation point, one table
and one figure panel per cell) and ``sweep`` tables (one number per method and cell, the cells
along an x axis; one figure of the metric against x). All draw every trained method's learning
curve against its budget with the published value as a dashed line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quickstudy.evaluation.plots import (
    plot_adaptation_curve,
    plot_adaptation_panels,
    plot_learning_curves,
)
from quickstudy.evaluation.tables import plot_method_bars, render_markdown
from quickstudy.presets.tables import Cell, TableSpec
from quickstudy.tracking import write_json_atomic


def paper_record(spec: TableSpec, cell: Cell) -> dict[str, Any]:
    """The cell's published values as its record stores them (JSON keys are strings)."""
    if spec.view != "adaptation":
        return dict(cell.paper)
    return {m: {str(k): v for k, v in p.items()} for m, p in cell.paper.items()}


def method_line(spec: TableSpec, cell: Cell, name: str, result: dict[str, Any]) -> str:
    """One log line of a finished method."""
    label = spec.methods[name].label
    if spec.view == "score":
        hyper = f"  {result['hyper']}" if result.get("hyper") else ""
        return (
            f"{cell.task}: {label:9s} {result['mean']:9.2f} ± {result['se']:.2f}  "
            f"(paper {cell.paper.get(name)}){hyper}"
        )
    if spec.view in ("sweep", "curve"):
        return (
            f"{cell.task}: {label:17s} {result['mean']:9.2f} ± {result['se']:.2f} "
            f"(point {result['point']}, trained on {result.get('train_task', cell.task)})"
        )
    per = result["per_step"]
    point = _point_label(spec)
    shown = ", ".join(
        f"{point(k)} {per[k]['mean']:.3f} ± {per[k]['se']:.3f}" for k in range(min(2, len(per)))
    )
    last = f", {point(len(per) - 1)} {per[-1]['mean']:.3f}" if len(per) > 2 else ""
    return f"{cell.task}: {label:17s} {shown}{last}  (published {cell.paper.get(name, {})})"


def _point_label(spec: TableSpec) -> Callable[[int], str]:
    """Column ``k`` of an adaptation table's meta-test, as its header reads."""
    return lambda k: spec.point_label.format(k=k + spec.first_point)


def agrees_with_paper(mean: float, se: float, paper: float | None) -> bool:
    """Whether ``mean`` is within ``max(3 se, 3 % of |paper|)`` of the published value."""
    return paper is None or abs(mean - paper) <= max(3.0 * se, 0.03 * abs(paper))


def write_outputs(
    spec: TableSpec,
    methods: Sequence[str],
    records: list[dict[str, Any]],
    prov: dict[str, Any],
    out_dir: str | Path,
) -> None:
    """Writes the table, the figures and ``table.json`` from the finished cells.

    Args:
        spec: The table.
        methods: The methods to show, in column order.
        records: The cell records so far.
        prov: The command, the commits that computed the cells, the machine and the
            wall-clock accumulated over every invocation on this output directory.
        out_dir: The output directory.
    """
    out = Path(out_dir)
    if spec.view == "score":
        lines = _score_lines(spec, methods, records)
        _score_figure(spec, methods, records, out / "figure.png")
    elif spec.view == "sweep":
        lines = _sweep_lines(spec, methods, records)
        _sweep_figure(spec, methods, records, out / "figure.png")
    elif spec.view == "curve":
        lines = _curve_lines(spec, methods, records)
        _learning_figure(spec, records, out / "figure.png", meta_test=True)
    else:
        lines = _adaptation_lines(spec, methods, records)
        _adaptation_figure(spec, records, out / "figure.png")
    lines += _seed_lines(spec, methods, records) + _normalized_lines(spec, methods, records)
    lines += ["", "Produced by:", ""]
    lines += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in prov.items()]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    write_json_atomic(out / "table.json", {"provenance": prov, "cells": records})
    if spec.view != "curve":
        _learning_figure(spec, records, out / "learning.png")


def _seed_lines(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]]
) -> list[str]:
    """Each multi-seed entry's mean with its CI across seeds, and each seed's value."""
    labels = spec.labels()
    d = spec.decimals
    out, counts = [], set()
    for r in records:
        for m in methods:
            seeds = (r["methods"].get(m) or {}).get("seeds")
            if not seeds:
                continue
            counts.add(len(seeds["seeds"]))
            low, high = seeds["ci_low"], seeds["ci_high"]
            ci = f" [{low:.{d}f}, {high:.{d}f}]" if low is not None else ""
            per = ", ".join(f"{v:.{d}f}" for v in seeds["per_seed"])
            out.append(f"- {r['label']}, {labels[m]}: {seeds['mean']:.{d}f}{ci} ({per})")
    if out:
        n = "/".join(map(str, sorted(counts)))
        out = ["", f"Trained methods over {n} seeds: each entry above is the mean over seeds "
               "(± s.e. over held-out tasks of the seed-averaged result); here the mean with "
               "a 95 % bootstrap CI across seeds, and each seed's value:", "", *out]  # fmt: skip
    return out


def _normalized_lines(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]]
) -> list[str]:
    """Per trained method, the IQM over cells of its normalized scores (``spec.normalize``).

    Only where every cell has the method and both references, with equal seed counts.
    """
    from quickstudy.evaluation.aggregate import stratified_iqm

    if spec.normalize is None:
        return []
    labels, (low, high) = spec.labels(), spec.normalize
    out = []
    for m in (m for m in methods if spec.methods[m].trains):
        cells = [r["methods"] for r in records]
        if len(cells) < 2 or not all(res.get(k) for res in cells for k in (m, low, high)):
            continue
        rows = [
            [(v - res[low]["mean"]) / (res[high]["mean"] - res[low]["mean"])
             for v in (res[m]["seeds"]["per_seed"] if res[m].get("seeds") else [res[m]["mean"]])]
            for res in cells
        ]  # fmt: skip
        if len({len(x) for x in rows}) != 1:
            continue
        agg = stratified_iqm(np.array(rows).T)
        ci = (f", 95 % stratified-bootstrap CI [{agg['ci_low']:.2f}, {agg['ci_high']:.2f}]"
              if agg["ci_low"] is not None else "")  # fmt: skip
        out += ["", f"{labels[m]} over the {len(rows)} cells, normalized to "
                f"{labels[low]} = 0 and {labels[high]} = 1: interquartile mean "
                f"{agg['iqm']:.2f}{ci} ({agg['seeds']} seed(s) per cell)."]  # fmt: skip
    return out


def _score_lines(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]]
) -> list[str]:
    labels = spec.labels()
    decimals = spec.decimals
    md = render_markdown(
        spec.title,
        [r["label"] for r in records],
        list(methods),
        labels,
        [r["methods"] for r in records],
        [r["paper"] for r in records],
        decimals=decimals,
        note=spec.note,
    )
    trained = [m for m in methods if spec.methods[m].trains and _ran(m, records)]
    header = "| setting | " + "".join(
        f"{labels[m]} steps | {labels[m]} training (s) | " for m in trained
    )
    lines = [md, "", header + "baselines (s) |", "|---" * (2 + 2 * len(trained)) + "|"]
    for r in records:
        entries = []
        for m in trained:
            res = r["methods"].get(m)
            entries += [_steps_entry(r, res), f"{res['train_seconds']:.0f}" if res else "—"]
        base_s = sum(
            res.get("seconds", 0.0) for m, res in r["methods"].items() if not spec.methods[m].algo
        )
        lines.append(f"| {r['label']} | " + " | ".join([*entries, f"{base_s:.0f}"]) + " |")
    tuned = []
    for r in records:
        hyper = [
            f"{labels[k]} {', '.join(f'{a}={b}' for a, b in m['hyper'].items())}"
            for k, m in r["methods"].items()
            if m.get("hyper")
        ]
        if hyper:  # none when only trained methods ran (--methods rl2)
            tuned.append(f"{r['label']}: " + ", ".join(hyper))
    if spec.tuned and tuned:
        lines += ["", "Tuned hyperparameters (on separate trials): " + "; ".join(tuned) + "."]
    baselines = [m for m in methods if spec.methods[m].baseline]
    if baselines:
        misses = [
            f"{r['label']} {labels[m]} {res['mean']:.{decimals}f} vs {r['paper'][m]}"
            for r in records
            for m, res in r["methods"].items()
            if m in baselines and not agrees_with_paper(res["mean"], res["se"], r["paper"].get(m))
        ]
        lines += [
            "",
            "Baselines further than max(3 s.e., 3 %) from the paper: "
            + ("; ".join(misses) if misses else "none")
            + ".",
        ]
    return lines


def _ran(method: str, records: list[dict[str, Any]]) -> bool:
    return any(method in r["methods"] for r in records)


def _score_figure(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]], path: Path
) -> None:
    panels = [
        (
            r["label"],
            {
                m: _across_seeds(r["methods"][m]) or r["methods"][m]
                for m in methods
                if m in r["methods"]
            },
        )
        for r in records
    ]
    paper = [r["paper"] for r in records]
    plot_method_bars(
        panels, path, spec.labels(), paper=paper, title=spec.title + _band_note(records)
    )


def _across_seeds(res: dict[str, Any]) -> dict[str, Any] | None:
    """A multi-seed entry's score as ``mean``, ``ci95_low``, ``ci95_high`` across its seeds.

    ``None`` for an entry of one seed (its interval is then over the held-out tasks).
    """
    seeds = res.get("seeds")
    if not seeds or seeds.get("ci_low") is None:
        return None
    return {"mean": seeds["mean"], "ci95_low": seeds["ci_low"], "ci95_high": seeds["ci_high"]}


def _points_across_seeds(res: dict[str, Any]) -> list[dict[str, float]] | None:
    """A multi-seed entry per point: the mean over seeds and its 95 % bootstrap CI across them.

    ``None`` for an entry of one seed, or a record written before ``per_seed_points`` existed.
    """
    from quickstudy.evaluation.aggregate import seed_band

    per_seed = (res.get("seeds") or {}).get("per_seed_points")
    if not per_seed or len(per_seed) < 2:
        return None
    band = seed_band(np.asarray(per_seed))
    keys = ("mean", "ci95_low", "ci95_high")
    return [dict(zip(keys, row, strict=True)) for row in zip(*(band[k] for k in keys), strict=True)]


def _seed_intervals(records: list[dict[str, Any]]) -> str:
    """What the intervals are where some entries have several seeds ("": over tasks only)."""
    counts = {
        len(res["seeds"]["seeds"])
        for r in records
        for res in r["methods"].values()
        if _across_seeds(res) is not None
    }
    if not counts:
        return ""
    n = "/".join(str(c) for c in sorted(counts))
    return f"95% CI across {n} seeds for trained methods, across held-out tasks otherwise"


def _band_note(records: list[dict[str, Any]]) -> str:
    """The figure title's note on the intervals, where some entries have several seeds."""
    text = _seed_intervals(records)
    return f"\n({text})" if text else ""


def _steps_entry(record: dict[str, Any], res: dict[str, Any] | None) -> str:
    """A trained method's steps in a cell: its run's own, and where it trained if elsewhere."""
    if not res:
        return "—"
    if "steps" not in res:  # a record written before runs kept their own steps
        return f"{record['budget']:,}"
    text = f"{res['steps']:,}"
    if res.get("train_task") and res["train_task"] != record.get("task"):
        text += f" (the run of {res['train_task']})"
    return text


def _shown_steps(points: int) -> list[int]:
    return sorted({0, 1, 2, points} & set(range(points + 1)))


def _adaptation_lines(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]]
) -> list[str]:
    labels = spec.labels()
    decimals = spec.decimals
    point = _point_label(spec)
    lines = [f"### {spec.title}", ""]
    for r in records:
        points = len(next(iter(r["methods"].values()))["per_step"]) - 1
        steps = _shown_steps(points)
        lines += [
            f"**{r['label']}** ({r['trials']} held-out tasks)",
            "",
            "| method | " + " | ".join(point(k) for k in steps) + " | training (s) |",
            "|---" * (len(steps) + 2) + "|",
        ]
        for method in methods:
            res = r["methods"].get(method)
            if res is None:
                continue
            entries = []
            for k in steps:
                row = res["per_step"][k]
                ref = r["paper"].get(method, {}).get(str(k + spec.first_point))
                text = (
                    f"{row['mean']:.{decimals}f} ± {row['se']:.{decimals}f}"
                    if np.isfinite(row["mean"])
                    else "diverged (non-finite)"
                )
                entries.append(text + (f" ({ref})" if ref is not None else ""))
            seconds = f"{res['train_seconds']:.0f}" if res.get("run_dir") else "—"
            lines.append(f"| {labels[method]} | " + " | ".join(entries) + f" | {seconds} |")
        lines.append("")
    lines += [spec.note]
    target = spec.target_method
    if target is not None:
        higher = spec.higher_is_better
        bound = "≥" if higher else "≤"
        lines += ["", f"| setting | {labels[target]} target | ours | met |", "|---|---|---|---|"]
        for r in records:
            res = r["methods"].get(target)
            for k, goal in r["targets"].items():
                if res is None:
                    continue
                ours = res["per_step"][int(k)]["mean"]
                met = ours >= goal if higher else ours <= goal
                lines.append(
                    f"| {r['label']}, {k} step(s) | {bound} {goal} | {ours:.{decimals}f} | "
                    f"{'yes' if met else 'no'} |"
                )
    return lines


def _adaptation_figure(spec: TableSpec, records: list[dict[str, Any]], path: Path) -> None:
    labels = spec.labels()
    panels = [
        (
            r["label"],
            {
                labels[m]: _points_across_seeds(res) or res["per_step"]
                for m, res in r["methods"].items()
            },
        )
        for r in records
    ]
    points = len(panels[0][1][next(iter(panels[0][1]))]) - 1
    results = [res for r in records for res in r["methods"].values()]
    means = np.array([row["mean"] for res in results for row in res["per_step"]])
    starts = np.array([res["per_step"][0]["mean"] for res in results])
    means, starts = means[np.isfinite(means)], starts[np.isfinite(starts)]
    ylim = None
    if means.size and starts.size:  # frame the sensible range; diverging curves leave it
        if spec.log_y:
            ylim = (0.5 * max(means.min(), 1e-6), 3.0 * starts.max())
        else:
            ylim = (1.3 * min(starts.min(), 0.0) - 1.0, max(0.0, means.max()) + 1.0)
    plot_adaptation_panels(
        panels,
        path,
        xs=np.arange(points + 1) + spec.first_point,
        xlabel=spec.point_axis,
        ylabel=spec.metric_label,
        title=f"{spec.title} (95% CI)" + _band_note(records),
        log_y=spec.log_y,
        ylim=ylim,
    )


def _sweep_lines(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]]
) -> list[str]:
    labels = spec.labels()
    d = spec.decimals
    shown = [m for m in methods if _ran(m, records)]
    records = sorted(records, key=lambda r: r["x"])
    lines = [f"### {spec.title}", "", "| setting | " + " | ".join(labels[m] for m in shown) + " |"]
    lines.append("|---" * (len(shown) + 1) + "|")
    for r in records:
        entries = []
        for m in shown:
            res = r["methods"].get(m)
            entries.append("—" if res is None else f"{res['mean']:.{d}f} ± {res['se']:.{d}f}")
        lines.append(f"| {r['label']} | " + " | ".join(entries) + " |")
    lines += ["", spec.note]
    runs = {
        (labels[m], res["train_task"]): (res["steps"], res["train_seconds"])
        for r in records
        for m, res in r["methods"].items()
        if res.get("run_dir")
    }
    if runs:
        lines += ["", "| method | trained on | steps | training (s) |", "|---|---|---|---|"]
        lines += [f"| {m} | {t} | {n:,} | {s:.0f} |" for (m, t), (n, s) in runs.items()]
    checks = [(a, b) for a, b in spec.checks if _ran(a, records) and _ran(b, records)]
    if checks:
        head = " | ".join(f"{labels[a]} above {labels[b]}" for a, b in checks)
        lines += ["", f"| setting | {head} |", "|---" * (len(checks) + 1) + "|"]
        for r in records:
            paired = r.get("checks", {})
            entries = [paired_verdict(paired.get(f"{a}>{b}"), d) for a, b in checks]
            lines.append(f"| {r['label']} | " + " | ".join(entries) + " |")
        lines += [
            "",
            "Differences are paired over the same held-out tasks (± s.e. of the per-task "
            'difference); "yes": more than 2 s.e. above zero, "no": more than 2 s.e. below, '
            '"tie": within 2 s.e.',
        ]
    return lines


def paired_verdict(diff: dict[str, Any] | None, decimals: int) -> str:
    """A table entry for a paired difference: ``yes``/``no``/``tie`` at 2 s.e., then the numbers.

    Args:
        diff: ``{"mean", "se"}`` of the per-task difference, or ``None`` (not computed: "—").
        decimals: Decimals of the numbers.
    """
    if diff is None:
        return "—"
    mean, se = diff["mean"], diff["se"]
    verdict = "yes" if mean > 2 * se else "no" if mean < -2 * se else "tie"
    return f"{verdict} ({mean:+.{decimals}f} ± {se:.{decimals}f})"


def _sweep_figure(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]], path: Path
) -> None:
    records = sorted(records, key=lambda r: r["x"])
    shown = [m for m in methods if records and all(m in r["methods"] for r in records)]
    if not shown:
        return
    labels = spec.labels()
    plot_adaptation_curve(
        {
            labels[m]: [_across_seeds(r["methods"][m]) or r["methods"][m] for r in records]
            for m in shown
        },
        path,
        xlabel=spec.x_label,
        ylabel=spec.metric_label,
        title=spec.title,
        xs=[r["x"] for r in records],
        note="bands: " + (_seed_intervals(records) or "95% CI over held-out tasks"),
    )


def _curve_lines(
    spec: TableSpec, methods: Sequence[str], records: list[dict[str, Any]]
) -> list[str]:
    """Final meta-test metric, budget and time per method and cell; sample efficiency."""
    labels, d = spec.labels(), spec.decimals
    lines = [f"### {spec.title}", ""]
    lines += ["| setting | method | meta-test (final) | published | steps | training (s) |"]
    lines += ["|---|---|---|---|---|---|"]
    for r in records:
        for m in methods:
            res = r["methods"].get(m)
            if res is None:
                continue
            paper = r["paper"].get(m)
            steps = f"{res['steps']:,}" if res.get("run_dir") else "—"
            seconds = f"{res['train_seconds']:.0f}" if res.get("run_dir") else "—"
            lines.append(
                f"| {r['label']} | {labels[m]} | {res['mean']:.{d}f} ± {res['se']:.{d}f} | "
                f"{'—' if paper is None else paper} | {steps} | {seconds} |"
            )
    lines += ["", spec.note]
    fast = spec.efficiency
    if fast is not None and _ran(fast, records):
        lines += [
            "",
            f"Sample efficiency: environment steps {labels[fast]} needed to reach each other "
            "method's final meta-test metric (first point of its meta-test curve at or above "
            "it), against the steps that method trained for.",
            "",
            f"| setting | method | its final | its steps | {labels[fast]} steps | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for r in records:
            mine = (r["methods"].get(fast) or {}).get("curve") or {}
            for m, res in r["methods"].items():
                if m == fast or not res.get("run_dir"):
                    continue
                reached = next(
                    (s for s, v in zip(mine.get("steps", []), mine.get("values", []), strict=True)
                     if v >= res["mean"]),
                    None,
                )  # fmt: skip
                ratio = (
                    "not reached" if reached is None else f"{res['steps'] / max(reached, 1):.1f}x"
                )
                shown = "—" if reached is None else f"{reached:,}"
                lines.append(
                    f"| {r['label']} | {labels[m]} | {res['mean']:.{d}f} | {res['steps']:,} | "
                    f"{shown} | {ratio} |"
                )
    return lines


def _learning_figure(
    spec: TableSpec, records: list[dict[str, Any]], path: Path, meta_test: bool = False
) -> None:
    """Learning curves of the trained methods, published values as dashed lines."""
    labels = spec.labels()
    panels, asymptotes = [], []
    unit, metric = "steps", "training metric"
    if spec.view == "sweep":  # runs shared between cells: one panel per training task
        records = _by_training_task(spec, records)
    for r in records:
        curves, lines = {}, {}
        for m, res in r["methods"].items():
            curve = res.get("curve")
            if not curve or not curve["steps"]:
                continue
            unit, metric = curve["unit"], curve["metric"]
            curves[labels.get(m, m)] = _over_seeds(res.get("seed_curves")) or (
                curve["steps"],
                curve["values"],
            )
            published = r["paper"].get(m)
            if isinstance(published, dict):
                published = published.get(str(curve.get("point")))
            lines[labels.get(m, m)] = published
        if curves:
            panels.append((r["label"], curves))
            asymptotes.append(lines)
    if not panels:
        return
    kind = "meta-test along training" if meta_test else "training curves"
    plot_learning_curves(
        panels,
        path,
        asymptotes=asymptotes,
        xlabel=unit,
        ylabel=metric,
        title=f"{spec.title}: {kind} (dashed: published)",
        log_x=meta_test,
    )


def _over_seeds(seed_curves: list[dict[str, Any]] | None) -> tuple | None:
    """A learning curve over seeds: ``(steps, mean, low, high)`` with a 95 % bootstrap CI.

    ``None`` with fewer than two seeds, or where the seeds' curves have different steps.
    """
    from quickstudy.evaluation.aggregate import seed_band

    if not seed_curves or len(seed_curves) < 2:
        return None
    steps = seed_curves[0]["steps"]
    if any(c["steps"] != steps for c in seed_curves) or not steps:
        return None
    band = seed_band([c["values"] for c in seed_curves])
    return steps, band["mean"], band["ci95_low"], band["ci95_high"]


def _by_training_task(spec: TableSpec, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pseudo-records, one panel per run shared between cells and one for the per-cell runs.

    Curves are keyed by display label (methods' training metrics differ, so each shared run has
    its own panel).
    """
    labels = spec.labels()
    panels: dict[str, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: r["x"]):
        for m, res in r["methods"].items():
            if not res.get("curve"):
                continue
            if spec.methods[m].train_on_cell:
                panel, key = f"{labels[m]}: one run per setting", r["label"]
            else:
                panel, key = f"{labels[m]}, trained on {res['train_task']}", labels[m]
            panels.setdefault(panel, {}).setdefault(key, res)
    return [{"label": k, "paper": {}, "methods": v} for k, v in panels.items()]
