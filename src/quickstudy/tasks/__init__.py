"""Task distributions, the registry of named ones, and the trial wrapper."""

from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.registry import make, names, register
from quickstudy.tasks.trial import Trial, TrialState

__all__ = ["TaskDistribution", "Trial", "TrialState", "make", "names", "register"]
