"""The one typed, validated config: every default lives here.

A config is a YAML file plus dotted `KEY=VALUE` overrides (the form a W&B agent passes with
`${args_no_hyphens}`). Unknown keys and impossible values fail at load time with a one-line message
that names the key and, where it helps, the allowed values.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import S2SError

# The four scientific axes of the paper / book ablations, by their fixed config names.
AXES = ("model.num_layers", "data.reverse_source", "model.peeky", "train.teacher_forcing_ratio")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AdditionConfig(_Section):
    """The arithmetic task of "Deep Learning from Scratch 2", ch. 7 ("16+75" -> "91")."""

    train_size: int = Field(45_000, ge=1)
    val_size: int = Field(5_000, ge=1)
    test_size: int = Field(5_000, ge=1)
    max_operand: int = Field(999, ge=1)
    # digits: the book's (and Keras's) generator, digit count uniform in 1..3 then uniform digits,
    # so short operands are common; uniform: operands uniform in 0..max_operand (mostly 3 digits).
    sampling: Literal["digits", "uniform"] = "digits"
    # Which questions are drawn. One dataset for every run by default, as the book's file is: seeds
    # then vary only initialisation and batch order, every arm and seed is tested on the same
    # questions, and runs of different seeds can form an ensemble. null: the run's own seed draws
    # its own dataset (for studying data variance; such runs cannot be ensembled).
    seed: int | None = Field(0, ge=0)


class DataConfig(_Section):
    name: Literal["addition", "multi30k", "parallel"] = "addition"
    # multi30k/parallel: folder with {split}.{lang}[.gz]; multi30k also reads $S2S_MULTI30K_DIR.
    dir: str | None = None
    src_lang: str = "de"
    tgt_lang: str = "en"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test_2016_flickr"
    lowercase: bool = False
    min_freq: int = Field(1, ge=1)
    max_src_vocab: int | None = Field(None, ge=1)  # the paper: 160k source words
    max_tgt_vocab: int | None = Field(None, ge=1)  # the paper: 80k target words
    max_train_sentences: int | None = Field(None, ge=1)  # first N pairs: tiny runs and demos
    max_eval_sentences: int | None = Field(None, ge=1)
    max_length: int | None = Field(None, ge=1)  # drop training pairs longer than this (tokens)
    reverse_source: bool = False
    batch_size: int = Field(128, ge=1)
    bucketing: bool = True  # length-bucketed batches (the paper's); False: random batches
    num_workers: int = Field(0, ge=0)
    addition: AdditionConfig = AdditionConfig()


class ModelConfig(_Section):
    num_layers: int = Field(1, ge=1)
    embedding_dim: int = Field(16, ge=1)
    hidden_dim: int = Field(128, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    peeky: bool = False
    init_range: float = Field(0.08, gt=0.0)


class TrainConfig(_Section):
    max_epochs: int = Field(25, ge=1)
    teacher_forcing_ratio: float = Field(1.0, ge=0.0, le=1.0)
    # How the ratio changes with the epoch: from teacher_forcing_ratio towards teacher_forcing_min.
    teacher_forcing_schedule: Literal["constant", "linear", "inverse_sigmoid"] = "constant"
    teacher_forcing_min: float = Field(0.0, ge=0.0, le=1.0)
    teacher_forcing_k: float = Field(5.0, gt=0.0)  # inverse sigmoid: k / (k + exp(epoch / k))
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    # The paper's SGD recipe: after `lr_decay_start_epoch` epochs halve every `lr_decay_every` epochs.
    lr_decay_start_epoch: float | None = Field(None, ge=0.0)
    lr_decay_every: float = Field(0.5, gt=0.0)
    lr_decay_factor: float = Field(0.5, gt=0.0, le=1.0)
    grad_clip: float | None = Field(5.0, gt=0.0)
    early_stopping_patience: int | None = Field(None, ge=1)
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    progress_bar: bool = True
    deterministic: bool = True
    limit_train_batches: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _min_below_start(self) -> TrainConfig:
        if self.teacher_forcing_schedule != "constant" and self.teacher_forcing_min > self.teacher_forcing_ratio:
            raise ValueError("train.teacher_forcing_min must not exceed train.teacher_forcing_ratio")
        return self


class EvalConfig(_Section):
    beam_size: int = Field(1, ge=1)
    length_normalize: bool = True
    # Hypotheses stop at max_len_a * source_length + max_len_b tokens.
    max_len_a: float = Field(1.5, ge=0.0)
    max_len_b: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    length_buckets: list[int] = [0, 5, 10, 15, 20, 25, 30, 35, 1000]
    frequency_buckets: list[int] = [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 1_000_000]
    bootstrap_samples: int = Field(1000, ge=1)
    val_task_metric: bool = True  # decode the val set greedily for exact match / BLEU (the curve)
    val_decode_every: int = Field(1, ge=1)  # ... every k epochs and on the last (its time share: history.csv)


class TrackingConfig(_Section):
    # auto: online when a W&B API key is configured, else offline. Never fails for lack of network.
    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = "s2s-lightning"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = []
    name: str | None = None


class Config(_Section):
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    tracking: TrackingConfig = TrackingConfig()

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def get(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node


def check_axes(cfg: Config, axes: Sequence[str]) -> list[str]:
    """The scientific axes beyond AXES among `axes`, each checked to be a config key with a value."""
    extra = []
    for axis in axes:
        try:
            value = cfg.get(axis)
        except AttributeError:
            raise S2SError(f"scientific axis '{axis}' is not a config key") from None
        if isinstance(value, BaseModel):
            raise S2SError(f"scientific axis '{axis}' is a config section, not a key")
        if axis not in AXES and axis not in extra:
            extra.append(axis)
    return extra


def arm_name(cfg: Config, axes: Sequence[str] = ()) -> str:
    """A short label for the scientific-axis values, e.g. `L1-rev-peeky-tf0.5`, plus a token per axis
    outside AXES (`-hidden_dim64`); run dirs, W&B run names, sweeps and reports all use it."""
    name = (
        f"L{cfg.model.num_layers}-{'rev' if cfg.data.reverse_source else 'fwd'}-"
        f"{'peeky' if cfg.model.peeky else 'plain'}-tf{cfg.train.teacher_forcing_ratio:g}"
    )
    for axis in check_axes(cfg, axes):
        value = cfg.get(axis)
        value = f"{value:g}" if isinstance(value, float) else str(value)
        name += f"-{axis.rsplit('.', 1)[-1]}{value}"
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)  # a folder and W&B run name


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "config"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        parent = first["loc"][:-1]
        section: Any = Config
        for part in parent:
            field = section.model_fields.get(str(part)) if isinstance(section, type) else None
            section = field.annotation if field is not None else None
        allowed = sorted(section.model_fields) if isinstance(section, type) and issubclass(section, BaseModel) else []
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown config key '{key}'{hint}"
    if first["type"] == "literal_error":
        return f"config key '{key}': {msg}"
    if first["type"] == "value_error" and not first["loc"]:
        return f"config: {msg.removeprefix('Value error, ')}"
    msg = msg.removeprefix("Value error, ")
    return f"config key '{key}': {msg} (got {first.get('input')!r})"


def parse_override(text: str) -> tuple[str, Any]:
    """`model.num_layers=4` -> ("model.num_layers", 4); values are parsed as YAML scalars."""
    text = text.removeprefix("--")
    if "=" not in text:
        raise S2SError(f"override '{text}' is not of the form KEY=VALUE")
    key, raw = text.split("=", 1)
    if not key:
        raise S2SError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key, value


def set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise S2SError(f"config key '{key}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise S2SError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise S2SError(f"malformed YAML in {path}{where}: {problem}") from None
    except UnicodeDecodeError:
        raise S2SError(f"{path} is not valid UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise S2SError(f"{path} must hold a mapping of config keys, not {type(data).__name__}")
    return data


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys: {"model": {"peeky": True}} -> {"model.peeky": True}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


# What a resumed run may change: how long it trains. Anything else would make one run of two configs.
RESUMABLE_KEYS = ("train.max_epochs", "train.early_stopping_patience")


def resume_changes(saved: Config, new: Config) -> list[str]:
    """`key: old -> new` for each key `new` changes against a run's `saved` config that a resume may not."""
    old, now = flatten(saved.to_dict()), flatten(new.to_dict())
    return [
        f"{k}: {old.get(k)!r} -> {now.get(k)!r}" for k in now if now.get(k) != old.get(k) and k not in RESUMABLE_KEYS
    ]


def build_config(base: dict | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Validate `base` (a nested dict) with dotted overrides applied on top."""
    tree = copy.deepcopy(base or {})
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    for key, value in items:
        set_dotted(tree, key, value)
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise S2SError(_format_error(err)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    return build_config(read_yaml(path) if path else {}, overrides)


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
