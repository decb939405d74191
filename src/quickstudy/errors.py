"""Exceptions whose messages are shown to users as they are."""


class QuickstudyError(Exception):
    """Base class: an error caused by user input, reported without a traceback by the CLI."""


class UnknownNameError(QuickstudyError, KeyError):
    """An unknown task or algorithm name; the message lists the valid ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(QuickstudyError, ValueError):
    """A configuration value is invalid; the message names the field."""


class CheckpointError(QuickstudyError, OSError):
    """A checkpoint is missing, unreadable or does not match the run."""
