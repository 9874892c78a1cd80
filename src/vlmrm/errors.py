"""Exceptions that carry a message a user can act on.

Every error vlmrm raises on bad input derives from :class:`VLMRMError`, so the CLI can print
the message alone (no traceback) and exit with status 2.
"""

from __future__ import annotations


class VLMRMError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(VLMRMError, ValueError):
    """A configuration file, a ``--set`` override or a CLI argument is invalid."""


class DeviceError(ConfigError):
    """A device name is unknown, or names hardware this machine lacks (CUDA, a GPU index, MPS)."""


class ModelLoadError(VLMRMError):
    """A vision-language model could not be found, downloaded or built.

    ``alternative``, when given, is a model spec that needs no download (``tiny-random``), for
    when the model cannot be had here. The reward layer knows the spec, not how the caller's
    command line names a model, so the hint is worded by :meth:`describe`: ``str(error)`` says
    "the model spec 'tiny-random'", and each CLI subcommand passes its own option
    (``--model {spec}``, ``--set reward.model={spec}``).
    """

    def __init__(self, message: str, alternative: str | None = None):
        super().__init__(message, alternative)  # both in args, so the error pickles (Ray workers)
        self.message = message
        self.alternative = alternative

    def describe(self, model_option: str = "the model spec '{spec}'") -> str:
        """The message, with ``model_option`` (a template with ``{spec}``) naming the alternative."""
        if self.alternative is None:
            return self.message
        option = model_option.replace("{spec}", self.alternative)
        return f"{self.message}\n  - or use {option} to test the pipeline without weights (meaningless rewards)."

    def __str__(self) -> str:
        return self.describe()


class PromptError(VLMRMError, ValueError):
    """A prompt is empty, not a string, or otherwise unusable."""


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
