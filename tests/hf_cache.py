"""Build a Hugging Face hub cache folder by hand, in the layout huggingface_hub itself writes:

    HF_HUB_CACHE/models--ORG--NAME/
        blobs/<sha256 of each file>          the content (huggingface_hub names LFS blobs by sha256)
        refs/<branch>                        the commit hash the branch points at
        snapshots/<commit>/<file> -> ../../blobs/<sha256>

so the offline path of `judge.models.hub` is tested without a network.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def add_snapshot(hub_cache: Path, repo_id: str, source: Path, *, commit: str,
                 branch: str | None = "main", files: list[str] | None = None) -> Path:
    """Copy ``source``'s files into ``hub_cache`` as revision ``commit`` of ``repo_id``."""
    assert len(commit) == 40
    org, name = repo_id.split("/")
    repo = hub_cache / f"models--{org}--{name}"
    blobs, snap = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for f in sorted(source.iterdir()):
        if not f.is_file() or (files is not None and f.name not in files):
            continue
        data = f.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        blob = blobs / digest
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / f.name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(blob, snap), link)
    if branch is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / branch).write_text(commit)
    return snap
