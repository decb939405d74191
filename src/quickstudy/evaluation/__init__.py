"""Meta-test statistics and figures."""

from quickstudy.evaluation.stats import (
    betainc,
    bootstrap_ci,
    per_index_summary,
    student_t_cdf,
    student_t_ppf,
    summarize,
    welch_one_sided_p,
)

__all__ = [
    "betainc",
    "bootstrap_ci",
    "per_index_summary",
    "student_t_cdf",
    "student_t_ppf",
    "summarize",
    "welch_one_sided_p",
]
