"""The one typed, validated config: every default lives here.

A config is a YAML file plus dotted `KEY=VALUE` overrides (the form a W&B agent passes with
`${args_no_hyphens}`). Unknown keys and impossible values fail at load time with a one-line message
that names the key and, where it helps, the allowed values.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import S2SError

# The four scientific axes of the paper / book ablations, by their fixed config names.
AXES = ("model.num_layers", "data.reverse_source", "model.peeky", "train.teacher_forcing_ratio")


class _Section(BaseModel):
    # A field's docstring is its description: `s2s config` prints it beside the key.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True, allow_inf_nan=False
    )


class AdditionConfig(_Section):
    """The arithmetic task of "Deep Learning from Scratch 2", ch. 7 ("16+75" -> "91")."""

    train_size: int = Field(45_000, ge=1)
    """Training questions."""
    val_size: int = Field(5_000, ge=1)
    """Validation questions."""
    test_size: int = Field(5_000, ge=1)
    """Test questions."""
    max_operand: int = Field(999, ge=1)
    """Largest operand (999: up to three digits each)."""
    sampling: Literal["digits", "uniform"] = "digits"
    (
        "digits: the book's generator (digit count uniform, so short operands are common); uniform: operands "
        "uniform."
    )
    seed: int | None = Field(0, ge=0)
    (
        "Which questions are drawn: one dataset for every run (seeds vary init and batch order); null: the "
        "run's seed."
    )

    @model_validator(mode="after")
    def _questions_exist(self) -> AdditionConfig:
        """Checked with the config (so an ablation's every budget at load time), not when data are drawn:
        at most half the (max_operand + 1)^2 distinct questions, so drawing them ends quickly."""
        total, space = self.train_size + self.val_size + self.test_size, (self.max_operand + 1) ** 2
        if total > space // 2:
            raise ValueError(
                f"data.addition: {total} distinct questions requested (train_size + val_size + test_size); "
                f"at most {space // 2} can be drawn with max_operand={self.max_operand}"
            )
        return self


class DataConfig(_Section):
    name: Literal["addition", "multi30k", "parallel"] = "addition"
    """addition (no files), multi30k (read locally or downloaded) or parallel (your own files in data.dir)."""
    dir: str | None = None
    """Folder with {split}.{lang}[.gz] files; multi30k also reads $S2S_MULTI30K_DIR, then a download cache."""
    src_lang: str = "de"
    """Source language (file suffix)."""
    tgt_lang: str = "en"
    """Target language (file suffix)."""
    train_split: str = "train"
    """File stem of the training split."""
    val_split: str = "val"
    """File stem of the validation split."""
    test_split: str = "test_2016_flickr"
    """File stem of the test split."""
    lowercase: bool = False
    """Lowercase the text before tokenizing."""
    min_freq: int = Field(1, ge=1)
    """Words seen fewer times in training become <unk>."""
    max_src_vocab: int | None = Field(None, ge=1)
    """Most frequent source words kept (the paper: 160,000); null: all."""
    max_tgt_vocab: int | None = Field(None, ge=1)
    """Most frequent target words kept (the paper: 80,000); null: all."""
    max_train_sentences: int | None = Field(None, ge=1)
    """Only the first N training pairs (tiny runs and demos)."""
    max_eval_sentences: int | None = Field(None, ge=1)
    """Only the first N validation and test pairs."""
    max_length: int | None = Field(None, ge=1)
    """Drop training pairs longer than this many tokens."""
    reverse_source: bool = False
    """Reverse the source sentence's tokens (Sutskever et al.)."""
    batch_size: int = Field(128, ge=1)
    """Sentence pairs per training batch."""
    bucketing: bool = True
    """Length-bucketed batches (the paper's same-length minibatches); false: random batches."""
    num_workers: Literal["auto"] | Annotated[int, Field(ge=0)] = "auto"
    """DataLoader worker processes; auto: 2 when training on CUDA, 0 (the training process) on a CPU."""
    pin_memory: Literal["auto"] | bool = "auto"
    """Batches in page-locked memory, copied to the GPU without blocking; auto: on CUDA."""
    addition: AdditionConfig = AdditionConfig()
    """The addition task's questions."""


class ModelConfig(_Section):
    num_layers: int = Field(1, ge=1)
    """LSTM layers of encoder and decoder (the paper: 4)."""
    embedding_dim: int = Field(16, ge=1)
    """Word embedding size."""
    hidden_dim: int = Field(128, ge=1)
    """LSTM hidden size (the paper: 1000)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on embeddings, between LSTM layers and before the output layer."""
    peeky: bool = False
    """Feed the encoder's summary to every decoder step and to the output layer (the book's Peeky)."""
    init_range: float = Field(0.08, gt=0.0)
    """Parameters start uniform in [-init_range, init_range] (the paper: 0.08)."""


class TrainConfig(_Section):
    max_epochs: int = Field(25, ge=1)
    """Training epochs."""
    teacher_forcing_ratio: float = Field(1.0, ge=0.0, le=1.0)
    """Probability of feeding the true previous token (below 1: scheduled sampling)."""
    teacher_forcing_schedule: Literal["constant", "linear", "inverse_sigmoid"] = "constant"
    """How the ratio moves from teacher_forcing_ratio towards teacher_forcing_min over the epochs."""
    teacher_forcing_min: float = Field(0.0, ge=0.0, le=1.0)
    """The ratio a schedule ends at."""
    teacher_forcing_k: float = Field(5.0, gt=0.0)
    """Inverse sigmoid schedule's k: ratio k / (k + exp(epoch / k))."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """adam, or sgd (the paper's)."""
    lr: float = Field(1e-3, gt=0.0)
    """Learning rate."""
    lr_decay_start_epoch: float | None = Field(None, ge=0.0)
    (
        "The paper's recipe: from this epoch on, multiply the rate by lr_decay_factor every lr_decay_every "
        "epochs."
    )
    lr_decay_every: float = Field(0.5, gt=0.0)
    """Epochs between decays (the paper: half an epoch)."""
    lr_decay_factor: float = Field(0.5, gt=0.0, le=1.0)
    """Decay multiplier."""
    grad_clip: float | None = Field(5.0, gt=0.0)
    """Clip the gradient's norm to this (the paper: 5); null: no clipping."""
    early_stopping_patience: int | None = Field(None, ge=1)
    """Stop after this many epochs without a better validation perplexity; null: never."""
    accelerator: str = "auto"
    """Lightning accelerator: auto, cpu, gpu."""
    devices: Any = 1
    """Lightning devices: a count, a list of indices or auto."""
    strategy: str = "auto"
    """Lightning strategy: auto, ddp, ddp_spawn."""
    precision: str = "32-true"
    """Lightning precision: 32-true, bf16-mixed, 16-mixed."""
    lstm_precision: Literal["auto", "fp32", "bf16"] = "auto"
    (
        "The LSTMs' dtype under mixed precision: fp32, bf16 (cast explicitly), auto (fp32 on CUDA; CPU: "
        "README)."
    )
    tf32: bool = True
    """On CUDA, float32 matmuls and cuDNN use TF32 tensor cores (the output layer's largest matmul)."""
    progress_bar: bool = True
    """Show Lightning's progress bar (on a terminal only: logs get one line per epoch)."""
    threads: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    (
        "CPU threads of torch; auto: $OMP_NUM_THREADS if set, else half the cores, at most 4 (LSTMs scale no "
        "further)."
    )
    deterministic: Literal["auto"] | bool = "auto"
    """true: deterministic kernels wherever torch has them; auto: that on a CPU, cuDNN's only on CUDA."""
    fused_optimizer: Literal["auto"] | bool = "auto"
    """Adam's fused kernel (no host read of its step count); auto: on CUDA, unless 16-mixed and clipped."""
    limit_train_batches: int | float | None = None
    """Train on this many batches (an integer) or this fraction of them (in (0, 1]) per epoch; null: all."""

    @field_validator("limit_train_batches", mode="before")
    @classmethod
    def _batches(cls, value: Any) -> Any:  # as Lightning reads it: an int counts batches, a float is a share
        value = int(value) if isinstance(value, float) and value > 1 and value.is_integer() else value
        count = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if not (value is None or count or (isinstance(value, float) and 0 < value <= 1)):
            raise ValueError("takes a batch count (an integer from 1) or a fraction of the epoch in (0, 1]")
        return value

    @model_validator(mode="after")
    def _fused_with_a_scaler(self) -> TrainConfig:
        if self.fused_optimizer is True and self.precision.startswith("16") and self.grad_clip:
            raise ValueError(
                "train.fused_optimizer=true cannot be clipped under 16-mixed (fused Adam unscales in its "
                "step, after clipping): set train.fused_optimizer=false or train.grad_clip=null"
            )
        return self

    @model_validator(mode="after")
    def _min_below_start(self) -> TrainConfig:
        if (
            self.teacher_forcing_schedule != "constant"
            and self.teacher_forcing_min > self.teacher_forcing_ratio
        ):
            raise ValueError("train.teacher_forcing_min must not exceed train.teacher_forcing_ratio")
        return self


class EvalConfig(_Section):
    beam_size: int = Field(1, ge=1)
    """Beam width for the test set (1: greedy; the paper: 12)."""
    length_normalize: bool = True
    """Compare finished hypotheses by score per token."""
    max_len_a: float = Field(1.5, ge=0.0)
    """Hypotheses stop at max_len_a * source length + max_len_b tokens."""
    max_len_b: int = Field(10, ge=1)
    """See max_len_a."""
    batch_size: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    """Sentences decoded together (validation and test batches); auto: 64 on a CPU, 512 on CUDA."""
    length_buckets: list[int] = [0, 5, 10, 15, 20, 25, 30, 35, 1000]
    """Source-length bucket edges of the by-length analysis."""
    frequency_buckets: list[int] = [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 1_000_000]
    """Average word-frequency-rank bucket edges of the by-frequency analysis."""
    bootstrap_samples: int = Field(1000, ge=1)
    """Resamples of the test set for the confidence interval."""
    val_task_metric: bool = True
    """Decode the validation set greedily for exact match / BLEU (the curve)."""
    val_decode_every: int = Field(1, ge=1)
    """... every k epochs and on the last (its time share is in history.csv)."""

    @model_validator(mode="after")
    def _increasing_edges(self) -> EvalConfig:
        for name in ("length_buckets", "frequency_buckets"):
            edges = getattr(self, name)
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError(f"eval.{name} must be at least two increasing bucket edges (got {edges})")
        return self


def cpu_threads(value: str | int) -> int:
    """train.threads resolved: auto is $OMP_NUM_THREADS when set (sweeps set it per worker), else half the
    cores and at most 4: a 2-core machine shared with anything else ran a 2-epoch run in 50 s with
    torch's default (every core) and in 7 s with one thread."""
    if value != "auto":
        return int(value)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class TrackingConfig(_Section):
    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    """auto: online when a W&B API key is configured, else offline; never fails for lack of network."""
    project: str = "s2s-lightning"
    """W&B project."""
    entity: str | None = None
    """W&B entity (team or user); null: your default."""
    group: str | None = None
    """W&B group (sweeps set it to the study)."""
    tags: list[str] = []
    """W&B tags."""
    name: str | None = None
    """W&B run name (default: arm-seed)."""
    log_checkpoint: bool = False
    """Upload the run's checkpoints to W&B as an artifact at the end of training."""


class Config(_Section):
    seed: int = 0
    """Initialisation and batch order (and, for addition with data.addition.seed null, the questions)."""
    data: DataConfig = DataConfig()
    """The dataset, its tokenization and vocabularies, batching."""
    model: ModelConfig = ModelConfig()
    """The LSTM encoder-decoder."""
    train: TrainConfig = TrainConfig()
    """Optimisation, teacher forcing, devices."""
    eval: EvalConfig = EvalConfig()
    """Decoding and the analyses of the test set."""
    tracking: TrackingConfig = TrackingConfig()
    """Weights & Biases."""

    def to_dict(self) -> dict[str, Any]:
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
            is_model = isinstance(section, type) and issubclass(section, BaseModel)
            field = section.model_fields.get(str(part)) if is_model else None
            section = field.annotation if field is not None else None
        allowed = (
            sorted(section.model_fields)
            if isinstance(section, type) and issubclass(section, BaseModel)
            else []
        )
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown config key '{key}'{hint}"
    if first["type"] == "literal_error":
        return f"config key '{key}': {msg}"
    if first["type"] == "value_error" and (not first["loc"] or isinstance(first.get("input"), dict)):
        return f"config: {msg.removeprefix('Value error, ')}"  # a section's own check names its keys
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


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise S2SError(f"config key '{key}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load refusing a key given twice in a mapping (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
            if isinstance(key, Hashable) and lines.setdefault(key, line) != line:
                why = f"duplicate key '{key}' (lines {lines[key]} and {line})"
                raise yaml.constructor.ConstructorError(None, None, why, key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise S2SError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
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


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys: {"model": {"peeky": True}} -> {"model.peeky": True}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


# Keys that say how or where a run ran, not what was run: runs differing only in these are one arm
# (reports pool them), and a sweep adopts a finished run that differs from its trial only in these.
RUN_ONLY_KEYS = (
    "seed",
    "tracking.",
    "train.progress_bar",
    "train.threads",
    "train.accelerator",
    "train.devices",
    "train.strategy",
    "train.deterministic",
    "train.fused_optimizer",
    "data.dir",
    "data.num_workers",
    "data.pin_memory",
    "eval.batch_size",
)


def science_differences(a: Config, b: Config) -> list[str]:
    """The keys, RUN_ONLY_KEYS aside, in which two configs differ: empty when they train the same model
    on the same data (a seed is compared too: it is what a grid point's runs differ by)."""
    x, y = flatten(a.to_dict()), flatten(b.to_dict())
    keys = dict.fromkeys([*x, *y])
    return [k for k in keys if x.get(k) != y.get(k) and (k == "seed" or not k.startswith(RUN_ONLY_KEYS))]


# What a resumed run may change: how long and where it trains (a requeued SLURM job may land on another
# node layout). Anything else would make one run of two configs.
RESUMABLE_KEYS = (
    "train.max_epochs",
    "train.early_stopping_patience",
    "train.accelerator",
    "train.devices",
    "train.strategy",
)


def resume_changes(saved: Config, new: Config) -> list[str]:
    """`key: old -> new` for each key `new` changes against a run's `saved` config that a resume may not."""
    old, now = flatten(saved.to_dict()), flatten(new.to_dict())
    return [
        f"{k}: {old.get(k)!r} -> {now.get(k)!r}"
        for k in now
        if now.get(k) != old.get(k) and k not in RESUMABLE_KEYS
    ]


def build_config(
    base: dict[str, Any] | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Config:
    """Validate `base` (a nested dict) with dotted overrides applied on top."""
    tree = copy.deepcopy(base or {})
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    for key, value in items:
        set_dotted(tree, key, value)
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise S2SError(_format_error(err)) from None


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Config:
    return build_config(read_yaml(path) if path else {}, overrides)
