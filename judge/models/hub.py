"""Hugging Face hub ids: ``org/name`` or ``org/name@revision`` resolved to a snapshot folder.

Resolution goes through ``huggingface_hub.snapshot_download``, the same cache transformers and vLLM
use (``HF_HOME`` / ``HF_HUB_CACHE``): online, the files a checkpoint needs are downloaded (or found
already there); offline (``HF_HUB_OFFLINE=1``, or no connection) the cached snapshot of that revision
is used. The folder returned is ``…/models--org--name/snapshots/<commit>``, so the commit hash is the
revision recorded in the run's manifest; engines get that folder and never touch the network.

Every failure (gated or missing repository, unknown revision, not cached while offline, a repository
without safetensors weights) is a `ModelSpecError` with one line saying what to do.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from judge.errors import ModelSpecError

__all__ = ["HUB_SPEC_RE", "HubSnapshot", "parse_hub_spec", "resolve_hub"]

# org/name, optionally @revision (a branch, tag or commit). Hub names: letters, digits, - _ .
HUB_SPEC_RE = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<revision>[^\s@]+))?$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")

# What a transformers/vLLM checkpoint needs: config, tokenizer, chat template, safetensors weights.
# Other weight formats a repository may also carry (.bin, .pt, .gguf, onnx/, original/) are skipped.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.tiktoken", "merges.txt",
                  "vocab.txt", "spiece.model"]


class HubSnapshot:
    """A resolved hub spec: its repository, the revision asked for, the commit, the folder."""

    def __init__(self, repo_id: str, requested: str | None, commit: str, path: Path):
        self.repo_id = repo_id
        self.requested = requested
        self.commit = commit
        self.path = path


def parse_hub_spec(text: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision or None)`` when ``text`` has the shape of a hub id, else None."""
    m = HUB_SPEC_RE.match(text)
    if m is None:
        return None
    return m.group("repo"), m.group("revision")


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def resolve_hub(repo_id: str, revision: str | None, *, download: bool = True) -> HubSnapshot:
    """Download (online) or find in the cache (offline, or ``download=False``) one revision."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (DisabledRepoError, GatedRepoError, HfHubHTTPError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    from huggingface_hub.utils import (are_progress_bars_disabled, disable_progress_bars,
                                       enable_progress_bars)

    from judge.models.build import build_progress, say

    spec = f"{repo_id}@{revision}" if revision else repo_id
    fetch = f"`hf download {repo_id}" + (f" --revision {revision}`" if revision else "`")
    bars_were_off = are_progress_bars_disabled()
    t0 = time.monotonic()
    try:
        disable_progress_bars()  # judge draws its own line; hub bars would flood the terminal
        local_only = _offline() or not download
        with build_progress(spec, intro=None) as progress:
            progress.step("looking it up in the Hugging Face cache" if local_only
                          else "fetching it from the Hugging Face hub (or its local cache)")
            folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS,
                                            local_files_only=not download))
    except GatedRepoError:
        raise ModelSpecError(
            f"{repo_id} is a gated repository on the Hugging Face hub and this account has no access: "
            f"accept its terms on its hub page, then log in (`hf auth login`, or set HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise ModelSpecError(
            f"{repo_id} is not a local folder and the Hugging Face hub has no model of that name (or it "
            f"is private: log in with `hf auth login` or set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ModelSpecError(f"the Hugging Face hub model {repo_id} has no revision {revision!r}: "
                             "give a branch, tag or commit it has") from None
    except DisabledRepoError:
        raise ModelSpecError(f"{repo_id} is disabled on the Hugging Face hub") from None
    except LocalEntryNotFoundError as err:
        if _offline() or not download:
            why = "HF_HUB_OFFLINE is set" if _offline() else "downloading is off here"
            raise ModelSpecError(
                f"{spec} is not in the local Hugging Face hub cache and {why}: download it once while "
                f"online ({fetch}) or unset HF_HUB_OFFLINE") from None
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelSpecError(
            f"{spec} is not in the local Hugging Face hub cache and the hub could not be reached "
            f"({reason[:160]}): check the connection, or download it elsewhere ({fetch}) and copy "
            "the cache (HF_HOME)") from None
    except HfHubHTTPError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelSpecError(f"the Hugging Face hub refused {spec}: {first}") from None
    except (OSError, ValueError) as err:  # disk full, bad cache folder, an id the hub client rejects
        raise ModelSpecError(f"could not fetch {spec} from the Hugging Face hub: "
                             f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    finally:
        if not bars_were_off:
            enable_progress_bars()
    commit = folder.name if _COMMIT_RE.match(folder.name) else (revision or "unknown")
    if not (folder / "config.json").is_file():
        raise ModelSpecError(f"{spec} has no config.json on the Hugging Face hub (a GGUF-only or "
                             f"non-transformers repository?): download the file you want with `hf "
                             f"download {repo_id} FILE` and pass its path", path=folder)
    if not any(folder.glob("*.safetensors")):
        raise ModelSpecError(f"{spec} has no .safetensors weights (judge fetches only those): download "
                             f"it yourself (`hf download {repo_id} --local-dir DIR`) and pass DIR",
                             path=folder)
    say(f"{spec}: Hugging Face hub snapshot {commit[:12]} in {time.monotonic() - t0:.1f} s -> {folder}")
    return HubSnapshot(repo_id, revision, commit, folder)
