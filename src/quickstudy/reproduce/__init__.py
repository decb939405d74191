"""One engine for every paper table and figure: run cells, cache runs, render outputs."""

from quickstudy.reproduce.engine import TABLES, ReproduceSettings, reproduce, train_runs

__all__ = ["TABLES", "ReproduceSettings", "reproduce", "train_runs"]
