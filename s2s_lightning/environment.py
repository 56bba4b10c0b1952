"""Facts about the environment a run ran in, for its record: the code's git commit and whether the tree
was edited, library versions, and peak memory."""

from __future__ import annotations

import resource
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def peak_memory_mb(device: Any) -> float:
    """The allocator's peak on a CUDA device, else the process's max RSS."""
    if device.type == "cuda":
        import torch  # heavy, and only a training process has a device: reports read records without it

        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _git(*args: str) -> str | None:
    """stdout of a git command run in the package's checkout; None outside one or without git."""
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    return (_git("rev-parse", "HEAD") or "").strip() or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout): a run from an edited
    tree is not reproducible from its commit alone."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status.strip())


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("s2s-lightning", "torch", "pytorch-lightning", "wandb", "optuna", "sacrebleu", "sacremoses"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
