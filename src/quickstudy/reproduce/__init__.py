"""One engine for every paper table and figure: run cells, cache runs, render outputs."""

from quickstudy.reproduce.engine import TABLES, ReproduceSettings, reproduce

__all__ = ["TABLES", "ReproduceSettings", "reproduce"]
