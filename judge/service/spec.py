"""What a client submits: a run config (the same TOML/JSON `judge compare --config` takes) and the
name of the environment variable that holds the judge's key on the server -- never the key.

`check_spec` turns a submitted body into a `RunConfig` and the run folder it owns, or raises
`SpecError` with one line naming the field. Run folders live only under the service's outputs
folder: ``config.run`` may be a bare name, never a path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field

from judge.config import RunConfig
from judge.errors import ConfigError
from judge.schemas import Record
from judge.store import RUN_NAME_RE

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SECRET_NAMES = ("key", "apikey", "token", "secret", "password")
SECRET_SUFFIXES = ("_key", "_token", "_secret", "_password")


class SpecError(ValueError):
    """A submitted comparison is invalid; the message is one line that names the field."""


class ComparisonSpec(Record):
    """The body of ``POST /v1/comparisons``."""

    config: dict = Field(description="A run config: the fields of `judge compare --config run.toml`.")
    key_env: str | None = Field(default=None, description="Name of the server's environment "
                                "variable holding the judge's API key (the key itself is never sent).")


def _find_secret(value: object, where: str) -> str | None:
    """The path of a field whose name says it carries a secret (a key must not travel in a spec)."""
    if isinstance(value, dict):
        for k, v in value.items():
            name = f"{where}.{k}" if where else str(k)
            low = str(k).lower()
            if low in SECRET_NAMES or low.endswith(SECRET_SUFFIXES):
                return name
            found = _find_secret(v, name)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_secret(v, f"{where}.{i}")
            if found:
                return found
    return None


def check_spec(spec: ComparisonSpec, outputs: Path, cid: str) -> tuple[RunConfig, Path]:
    """The validated config (its ``run`` set to the folder it owns) and that folder."""
    from judge.compare import default_run_name, make_config, no_judge

    secret = _find_secret(spec.config, "config")
    if secret:
        raise SpecError(f"{secret}: a spec never carries a key; put the key in an environment "
                        "variable of the server and name it in key_env")
    try:
        cfg = make_config(spec.config, {})
    except ConfigError as err:
        raise SpecError("config." + str(err).removeprefix("invalid run config: ")) from None
    if cfg.run is not None and (not RUN_NAME_RE.match(cfg.run) or cfg.run in {".", ".."}):
        raise SpecError(f"config.run: {cfg.run!r} is not a bare run name (letters, digits, '_', '.', "
                        "'-'); run folders live under the server's outputs folder")
    if spec.key_env is not None:
        if not ENV_NAME_RE.match(spec.key_env):
            raise SpecError(f"key_env: {spec.key_env!r} is not an environment variable name")
        if no_judge(cfg.judge.spec):
            raise SpecError("key_env: this config has no judge (judge.spec = 'none')")
        if not os.environ.get(spec.key_env):
            raise SpecError(f"key_env: {spec.key_env} is not set in the server's environment")
    name = cfg.run or f"{default_run_name(cfg)}__{cid}"
    run_dir = (Path(outputs) / name).resolve()
    if run_dir.parent != Path(outputs).resolve():
        raise SpecError("config.run: the run folder must be directly under the outputs folder")
    return cfg.model_copy(update={"run": str(run_dir)}), run_dir
