"""Exceptions that carry a message a user can act on.

Every error vlmrm raises on bad input derives from :class:`VLMRMError`, so the CLI can print
the message alone (no traceback) and exit with status 2.
"""

from __future__ import annotations


class VLMRMError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(VLMRMError, ValueError):
    """A configuration file, a ``--set`` override or a CLI argument is invalid."""


class ModelLoadError(VLMRMError):
    """A vision-language model could not be found, downloaded or built."""


class PromptError(VLMRMError, ValueError):
    """A prompt is empty or otherwise unusable."""


class RenderBackendError(VLMRMError, RuntimeError):
    """No OpenGL backend could render offscreen."""


class CheckpointError(VLMRMError):
    """A checkpoint is missing, truncated or corrupt."""


class RunDirectoryError(VLMRMError):
    """A run directory exists already, or cannot be written."""


class RewardError(VLMRMError, RuntimeError):
    """The reward model produced an unusable value (NaN or infinity)."""


class WriteError(VLMRMError, RuntimeError):
    """A file of a run could not be written (disk full, quota, read-only file system, permissions)."""


class TrainingInterrupted(VLMRMError):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint; the message says how to resume.

    ``exit_code`` is the shell's convention for the signal: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_code: int, step: int, checkpoint: str | None):
        super().__init__(message)
        self.exit_code = exit_code
        self.step = step
        self.checkpoint = checkpoint
