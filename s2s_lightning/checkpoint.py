"""Loading checkpoints safely (`weights_only=True`) with clear errors for broken or foreign files."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .errors import S2SError


def load_state_dict(path: str | Path) -> dict:
    """The Lightning checkpoint's `state_dict`, loaded without executing pickled code."""
    return read_checkpoint(path)["state_dict"]


def read_checkpoint(path: str | Path) -> dict:
    """The whole Lightning checkpoint (state_dict, epoch, global_step, ...), loaded without executing
    pickled code."""
    path = Path(path)
    if not path.is_file():
        raise S2SError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise S2SError(
            f"checkpoint {path} is corrupted or not a PyTorch checkpoint ({_reason(exc)})"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise S2SError(f"checkpoint {path} has no state_dict: not written by 's2s train'")
    return ckpt


def _reason(exc: Exception) -> str:
    """The informative part of a load error. torch's weights-only refusal opens with advice to load
    with weights_only=False (never done here: that can run code) and closes with a link; the cause is
    the paragraph in between."""
    text = str(exc)
    if text.startswith("Weights only load failed"):
        parts = []
        for paragraph in (p.strip() for p in text.split("\n\n") if p.strip()):
            if "WeightsUnpickler error:" in paragraph:  # the cause, after the advice (torch >= 2.7)
                parts.append(paragraph.split("WeightsUnpickler error:", 1)[1])
            elif not paragraph.startswith(("Weights only load failed", "Check the documentation")):
                parts.append(paragraph)  # the cause, a paragraph of its own
        cause = " ".join(" ".join(parts).split()) or "unsupported content"  # one line, whole
        return f"the weights-only loader refused it: {cause}"
    return text.splitlines()[0] if text else type(exc).__name__


def model_state(path: str | Path) -> dict:
    """The Seq2Seq weights (the LightningModule's `model.` prefix removed)."""
    return _model_weights(load_state_dict(path))


def _model_weights(state_dict: dict) -> dict:
    return {k.removeprefix("model."): v for k, v in state_dict.items() if k.startswith("model.")}


def load_into(model: torch.nn.Module, path: str | Path) -> dict:
    """Load weights into `model`, naming the first mismatch if the checkpoint is from another config.
    Returns where in training the checkpoint was written: {"epoch": ..., "step": ...} (epochs from 1)."""
    ckpt = read_checkpoint(path)
    state = _model_weights(ckpt["state_dict"])
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise S2SError(
            f"checkpoint {path} does not match the run's config ({what}; e.g. model.peeky or "
            "model.num_layers differ)"
        )
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise S2SError(
                f"checkpoint {path} does not match the run's config: {key} has shape "
                f"{tuple(state[key].shape)}, the config gives {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    epoch = ckpt.get("epoch")
    return {"epoch": epoch + 1 if isinstance(epoch, int) else None, "step": ckpt.get("global_step")}
