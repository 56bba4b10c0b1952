"""Loading checkpoints safely (`weights_only=True`) with clear errors for broken or foreign files."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .errors import S2SError


def load_state_dict(path: str | Path) -> dict:
    """The Lightning checkpoint's `state_dict`, loaded without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise S2SError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise S2SError(f"checkpoint {path} is corrupted or not a PyTorch checkpoint ({reason})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise S2SError(f"checkpoint {path} has no state_dict: not written by 's2s train'")
    return ckpt["state_dict"]


def model_state(path: str | Path) -> dict:
    """The Seq2Seq weights (the LightningModule's `model.` prefix removed)."""
    return {k.removeprefix("model."): v for k, v in load_state_dict(path).items() if k.startswith("model.")}


def load_into(model: torch.nn.Module, path: str | Path) -> None:
    """Load weights into `model`, naming the first mismatch if the checkpoint is from another config."""
    state = model_state(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise S2SError(f"checkpoint {path} does not match the run's config ({what}; e.g. model.peeky or "
                       f"model.num_layers differ)")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise S2SError(f"checkpoint {path} does not match the run's config: {key} has shape "
                           f"{tuple(state[key].shape)}, the config gives {tuple(tensor.shape)}")
    model.load_state_dict(state)
