"""The exception hierarchy: one base class, every message a single line a user can act on.

`JudgeError` and its subclasses are *user-facing*: the CLI prints `str(err)` as one line and exits
with `err.exit_code` (2). Anything else that escapes is a bug and gets a traceback only with --debug.
A message says what is wrong, where (``file:line`` when a file is at fault) and how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class JudgeError(Exception):
    """Base class of every error judge reports to a user."""

    exit_code: int = 2

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


class InputFileError(JudgeError):
    """A file the user gave (questions, references, config, imported data) is malformed."""


class QuestionSetError(InputFileError):
    """A question set cannot be found or does not validate."""


class ModelSpecError(JudgeError):
    """A model spec names nothing usable (unknown name, missing folder, hub id while offline)."""


class ModelBuildError(JudgeError):
    """An embedded default model could not be built (missing package, conversion failure)."""


class EngineError(JudgeError):
    """The generation or scoring engine is unavailable or failed."""


class RunFolderError(JudgeError):
    """A run folder is missing a stage's files, or belongs to another version or question set."""


class TokenizerMismatchError(JudgeError):
    """Two models (or a model and a cache) do not share a tokenizer, so logits cannot be compared."""


class ConfigError(JudgeError):
    """A configuration value or flag combination is invalid."""


class JudgeSpecError(ConfigError):
    """The judge spec or endpoint settings are invalid (unknown form, missing API key...)."""


class JudgeEndpointError(JudgeError):
    """The judge endpoint cannot be reached or refuses every request."""


class ExecutorError(JudgeError):
    """The executor (a Ray cluster) cannot be reached, or a worker failed beyond its retries."""
