"""Facts about the environment a run ran in, for its record: the code's git commit, whether the tree
was edited and how (the diff, staged and unstaged, and the package's untracked files), the installed
distributions, library versions, peak memory; and the device a command computes on (`--device`)."""

from __future__ import annotations

import os
import resource
import subprocess
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import S2SError

if TYPE_CHECKING:
    import torch


def peak_memory_mb(device: Any) -> float:
    """The allocator's peak on a CUDA device, else the process's max RSS."""
    if device.type == "cuda":
        import torch  # heavy, and only a training process has a device: reports read records without it

        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: Path = PACKAGE_DIR, ok: tuple[int, ...] = (0,)) -> str | None:
    """stdout of a git command run in the package's checkout; None outside one or without git."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode in ok else None


def git_toplevel() -> Path | None:
    """The root of the git checkout the package runs from; None when it is not in one."""
    top = (_git("rev-parse", "--show-toplevel") or "").strip()
    return Path(top) if top else None


def git_commit() -> str | None:
    return (_git("rev-parse", "HEAD") or "").strip() or None


def untracked_files() -> list[str]:
    """Files in the package that git does not track and does not ignore (a new module), from the root."""
    out = _git("ls-files", "--others", "--exclude-standard", "--full-name", "--", ".")
    return sorted(line for line in (out or "").splitlines() if line)


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit or the package has untracked files (None outside a
    git checkout): a run from an edited tree is not reproducible from its commit alone."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status.strip() or untracked_files())


def git_diff() -> str | None:
    """What makes the tree differ from its commit, as one patch `git apply` takes at the checkout's root:
    staged and unstaged changes, and the package's untracked files as new files. None when clean."""
    top = git_toplevel()
    if top is None:
        return None
    parts = [_git("diff", "HEAD", "--binary", cwd=top) or ""]
    for name in untracked_files():  # exit code 1: the files differ, as they must
        parts.append(_git("diff", "--no-index", "--binary", "/dev/null", name, cwd=top, ok=(0, 1)) or "")
    text = "".join(parts)
    return text or None


def installed_distributions() -> str:
    """Every installed distribution as `name==version`, one per line, sorted: a pip constraints file."""
    found = {(d.metadata["Name"] or "").lower(): d.version for d in distributions() if d.metadata["Name"]}
    return "".join(f"{name}=={found[name]}\n" for name in sorted(found))


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("s2s-lightning", "torch", "pytorch-lightning", "wandb", "optuna", "sacrebleu", "sacremoses"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


CACHE_ENV = "S2S_CACHE_DIR"


def cache_dir() -> Path:
    """Where downloads and tokenized corpora are kept between runs: $S2S_CACHE_DIR, else ~/.cache."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "s2s_lightning"))


def parse_device(name: str) -> torch.device:
    """`--device` (auto, cpu, cuda, cuda:N) as torch names it: auto is the GPU if there is one; a GPU this
    machine lacks is refused here, in one line, rather than deep inside the first CUDA call."""
    import torch  # heavy: only the commands that compute ask for a device

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise S2SError(f"unknown device '{name}' (e.g. auto, cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise S2SError(f"--device {name}: no CUDA device is visible")
    return device
