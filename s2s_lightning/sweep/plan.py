"""Ablation files: the schema, its validation, and the expansion into arms x seeds.

An ablation file (`ablations/*.yaml`) states one study the way Google's tuning playbook frames it:

  base        a nested config (the recipe), validated with config.build_config
  scientific  `dotted.key: [values]`; the grid is their cartesian product, one *arm* per point
  nuisance    a search space tuned with the same trial budget for every arm (optional)
  fixed       dotted overrides held constant (the caveats on every conclusion)
  seeds       every arm is trained once per seed with its best nuisance values
  objective   {metric, direction}: a metric the task logs (metrics.py); direction from DIRECTIONS
  budgets     named sizes (`quick` for CPU demos/CI, `full` for the real study): overrides, the
              nuisance trials per arm and, optionally, fewer seeds, other axis values, or grid
              points to skip (a fractional design)

`expand(ablation, budget)` turns a file into a `Plan`, and `Plan.overrides(arm, seed, nuisance)` is
the one flat `key: value` mapping both the Optuna workers and W&B agents pass to `s2s train`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import metrics as M
from ..config import AXES, Config, arm_name, build_config, flatten, read_yaml
from ..errors import S2SError

FULL = "full"  # the default budget; every other budget suffixes the study name (`addition-quick`)
SEED = "seed"  # the Optuna param and W&B parameter that holds the seed
PER_TRIAL_KEYS = ("seed", "tracking.group", "tracking.name")  # set by the sweep, never by the file
Scalar = bool | int | float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchDim(_Strict):
    """One nuisance hyperparameter: `{type: log_uniform, low: 1.0e-4, high: 1.0e-2}`."""

    type: Literal["uniform", "log_uniform", "int", "log_int", "categorical"]
    low: float | None = None
    high: float | None = None
    values: list[Scalar] | None = None


class Pruner(_Strict):
    """Stops weak nuisance trials early; the seeds of the scientific grid are never pruned."""

    type: Literal["none", "median", "hyperband"] = "median"
    startup_trials: int = Field(3, ge=0)  # median: finished trials of the arm before pruning starts
    warmup_epochs: int = Field(1, ge=0)  # median: epochs a trial always gets
    min_epochs: int = Field(1, ge=1)  # hyperband: the smallest budget of a bracket
    reduction_factor: int = Field(3, ge=2)  # hyperband


class Nuisance(_Strict):
    space: dict[str, SearchDim] = {}
    # tpe learns from the arm's own finished trials; random draws the same points for every arm.
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Pruner = Pruner()
    # Tuning trials train with this seed, disjoint from `seeds`, so the reported runs are fresh draws
    # and not the lucky seed that won the tuning.
    seed: int = 1000


class Objective(_Strict):
    metric: str
    direction: Literal["minimize", "maximize"] | None = None


class Budget(_Strict):
    overrides: dict[str, Any] = {}
    nuisance_trials: int = Field(0, ge=0)  # per arm
    seeds: list[int] | None = None  # default: the file's `seeds`
    # Other values for some of the file's scientific axes (a CPU budget: 1 vs 2 layers, Peeky off);
    # an axis with one value here is held fixed and still recorded and reported as an axis.
    scientific: dict[str, list[Scalar]] = {}
    # Grid points left out (a fractional design): each entry names some axes' values, and every arm
    # that has all of them is skipped, e.g. `[{data.reverse_source: false, model.peeky: true}]`.
    skip: list[dict[str, Scalar]] = []


class AblationFile(_Strict):
    description: str = ""
    base: dict[str, Any] = {}
    scientific: dict[str, list[Scalar]]
    nuisance: Nuisance = Nuisance()
    fixed: dict[str, Any] = {}
    seeds: list[int] = [0]
    objective: Objective
    budgets: dict[str, Budget] = {FULL: Budget()}

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers (got {seeds})")
        return seeds


@dataclass(frozen=True)
class Arm:
    """One point of the scientific grid: its name (`L1-rev-peeky-tf1`) and axis values."""

    name: str
    values: dict[str, Any]


@dataclass
class Ablation:
    path: Path
    name: str  # the file stem: `addition`
    spec: AblationFile


@dataclass
class Plan:
    """An ablation at one budget: everything a sweep enqueues and runs."""

    ablation: Ablation
    budget: str
    study: str  # `addition` for the full budget, `addition-quick` otherwise
    arms: list[Arm]  # the grid's points less the skipped ones
    seeds: list[int]
    constants: dict[str, Any]  # flat overrides shared by every trial: base + fixed + budget
    grid: dict[str, list[Any]]  # each scientific axis' values at this budget
    nuisance: dict[str, SearchDim]
    nuisance_trials: int  # per arm
    objective: str
    direction: M.Direction
    tuning_metric: str  # a val/ metric: selects nuisance values and feeds the pruner
    tuning_direction: M.Direction
    skipped: list[str] = dataclasses.field(default_factory=list)  # names of the grid points left out

    @property
    def axes(self) -> list[str]:
        return list(self.ablation.spec.scientific)

    @property
    def extra_axes(self) -> list[str]:
        """Scientific axes beyond the four paper axes: `s2s train --axis` records them with each run."""
        return [a for a in self.axes if a not in AXES]

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def overrides(
        self,
        arm: Arm,
        seed: int,
        nuisance: dict[str, Any] | None = None,
        name: str | None = None,
        group: str | None = None,
    ) -> dict[str, Any]:
        """The flat `s2s train` overrides of one trial (the same for Optuna and W&B agents)."""
        out = dict(self.constants)
        out.update(arm.values)
        out.update(nuisance or {})
        out[SEED] = seed
        out["tracking.group"] = group or self.study  # one W&B group per study
        if name is not None:
            out["tracking.name"] = name
        return out

    def fingerprint(self) -> dict:
        """What a study is made of; a study created from a different version of the file is refused."""
        out = {
            "constants": self.constants,
            "axes": {a: self.grid[a] for a in self.axes},
            "seeds": self.seeds,
            "nuisance": {k: v.model_dump() for k, v in self.nuisance.items()},
            "tuning_seed": self.ablation.spec.nuisance.seed,
            "objective": self.objective,
        }
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def format_overrides(overrides: dict[str, Any]) -> list[str]:
    """`key=value` arguments formatted exactly as a W&B agent formats `${args_no_hyphens}`."""
    return [f"{k}={'null' if v is None else v}" for k, v in overrides.items()]


def tuning_metric(objective: str) -> str:
    """The validation metric that stands in for `objective` while tuning and pruning.

    Nuisance values are chosen on validation data, never on the test metric the arms are compared by.
    """
    if objective.startswith("val/"):
        return objective
    if objective in (M.TEST_BLEU, M.TEST_BLEU_TOK, M.TEST_BLEU_TOK_LC, M.TEST_CHRF):
        return M.VAL_BLEU
    return "val/" + objective.split("/", 1)[1]


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    if first["type"] == "missing":
        return f"missing key '{key}'"
    return f"'{key}': {first['msg'].removeprefix('Value error, ')}"


def load_ablation(path: str | Path) -> Ablation:
    """Read and validate an ablation file; every problem is a one-line S2SError naming it."""
    path = Path(path)
    if not path.is_file():
        raise S2SError(f"ablation file not found: {path}")
    raw = read_yaml(path)  # malformed YAML -> "malformed YAML in PATH at line L, column C: ..."
    try:
        spec = AblationFile.model_validate(raw)
    except ValidationError as err:
        raise S2SError(f"{path}: {_format_error(err)}") from None
    ablation = Ablation(path=path, name=path.stem, spec=spec)
    for budget in spec.budgets:
        expand(ablation, budget)  # validates every arm of every budget
    return ablation


def _build(path: Path, where: str, base: dict, overrides: dict) -> Config:
    try:
        return build_config(base, overrides)
    except S2SError as exc:
        raise S2SError(f"{path}: {where}: {exc}") from None


def _check_search_dim(path: Path, key: str, dim: SearchDim, base: dict, constants: dict) -> None:
    where = f"nuisance '{key}'"
    if dim.type == "categorical":
        if not dim.values:
            raise S2SError(f"{path}: {where}: categorical needs a non-empty `values` list")
        points = dim.values
    else:
        if dim.low is None or dim.high is None or not dim.low < dim.high:
            raise S2SError(
                f"{path}: {where}: {dim.type} needs low < high (got low={dim.low}, high={dim.high})"
            )
        if dim.type.startswith("log") and dim.low <= 0:
            raise S2SError(f"{path}: {where}: {dim.type} needs low > 0 (got {dim.low})")
        if dim.type.endswith("int") and not (float(dim.low).is_integer() and float(dim.high).is_integer()):
            raise S2SError(f"{path}: {where}: {dim.type} needs integer bounds")
        points = [dim.low, dim.high]
    for value in points:
        _build(path, where, base, {**constants, key: value})


def _normalise(cfg: Config, keys: list[str]) -> dict[str, Any]:
    """The validated, JSON-typed value of each key (`"1e-3"` -> 0.001, `1` -> 1.0 for floats)."""
    dumped = cfg.to_dict()
    out = {}
    for key in keys:
        node: Any = dumped
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def _skip(
    path: Path, budget: str, entries: list[dict[str, Scalar]], arms: list[Arm], base: dict, constants: dict
) -> tuple[list[Arm], list[str]]:
    """The arms a budget's `skip` entries leave, and the names of those they remove."""
    where = f"budget '{budget}': skip"
    skipped: list[str] = []
    for entry in entries:
        if not entry:
            raise S2SError(f"{path}: {where}: an entry names no axis")
        unknown = [axis for axis in entry if axis not in arms[0].values]
        if unknown:
            axes = ", ".join(arms[0].values)
            raise S2SError(f"{path}: {where}: '{unknown[0]}' is not a scientific axis (axes: {axes})")
        want = _normalise(_build(path, where, base, {**constants, **entry}), list(entry))
        hit = [a.name for a in arms if all(a.values[k] == v for k, v in want.items())]
        if not hit:
            shown = ", ".join(f"{k}={v}" for k, v in entry.items())
            raise S2SError(f"{path}: {where}: no arm has {shown} (check the axis values)")
        skipped += [name for name in hit if name not in skipped]
    kept = [a for a in arms if a.name not in skipped]
    if not kept:
        raise S2SError(f"{path}: {where}: every arm is skipped")
    return kept, skipped


def expand(ablation: Ablation, budget: str = FULL) -> Plan:
    """The arms, seeds and constant overrides of `ablation` at `budget`, all validated."""
    spec, path = ablation.spec, ablation.path
    if budget not in spec.budgets:
        raise S2SError(f"{path}: unknown budget '{budget}' (available: {', '.join(spec.budgets)})")
    b = spec.budgets[budget]
    constants = _constants(ablation, budget)
    grid = _grid(ablation, budget, constants)
    _check_nuisance(ablation, budget, constants)
    seeds = b.seeds if b.seeds is not None else spec.seeds
    if not seeds or len(set(seeds)) != len(seeds):
        raise S2SError(f"{path}: budget '{budget}': seeds must be a non-empty list of distinct integers")
    if b.nuisance_trials and spec.nuisance.seed in seeds:
        raise S2SError(
            f"{path}: nuisance.seed {spec.nuisance.seed} is one of the seeds; tuning needs its own"
        )
    arms, skipped = _skip(
        path, budget, b.skip, _arms(ablation, budget, constants, grid), spec.base, constants
    )
    metric = spec.objective.metric
    tuning = tuning_metric(metric)
    return Plan(
        ablation=ablation,
        budget=budget,
        study=ablation.name if budget == FULL else f"{ablation.name}-{budget}",
        arms=arms,
        seeds=list(seeds),
        constants=constants,
        grid=grid,
        nuisance=dict(spec.nuisance.space),
        nuisance_trials=b.nuisance_trials if spec.nuisance.space else 0,
        objective=metric,
        direction=M.DIRECTIONS[metric],
        tuning_metric=tuning,
        tuning_direction=M.DIRECTIONS[tuning],
        skipped=skipped,
    )


def _constants(ablation: Ablation, budget: str) -> dict[str, Any]:
    """The overrides every run of `budget` shares (base, fixed, the budget's own), validated."""
    spec, path, b = ablation.spec, ablation.path, ablation.spec.budgets[budget]
    _build(path, "base", spec.base, {})
    fixed = flatten(spec.fixed)
    _build(path, "fixed", spec.base, fixed)
    budget_overrides = flatten(b.overrides)
    written = {**flatten(spec.base), **fixed, **budget_overrides}
    resolved = _build(path, f"budget '{budget}'", spec.base, {**fixed, **budget_overrides})
    constants = _normalise(resolved, list(written))
    for key in PER_TRIAL_KEYS:
        if key in constants:
            raise S2SError(
                f"{path}: '{key}' is set per trial by the sweep; remove it from base/fixed/budgets"
            )
    return constants


def _grid(ablation: Ablation, budget: str, constants: dict[str, Any]) -> dict[str, list]:
    """The scientific axes and their values at `budget`, each value validated with the constants."""
    spec, path, b = ablation.spec, ablation.path, ablation.spec.budgets[budget]
    if not spec.scientific:
        raise S2SError(f"{path}: empty grid: `scientific` names no axis")
    unknown = [axis for axis in b.scientific if axis not in spec.scientific]
    if unknown:
        raise S2SError(
            f"{path}: budget '{budget}' sets values for '{unknown[0]}', which is not a scientific axis "
            f"(axes: {', '.join(spec.scientific)})"
        )
    grid = {axis: b.scientific.get(axis, values) for axis, values in spec.scientific.items()}
    for axis, values in grid.items():
        if not values:
            raise S2SError(f"{path}: empty grid: scientific axis '{axis}' has no values")
        if axis == SEED:
            raise S2SError(f"{path}: 'seed' is not a scientific axis; list seeds under `seeds`")
        if axis in constants:
            raise S2SError(
                f"{path}: '{axis}' is both a scientific axis and a fixed value (base/fixed/budget)"
            )
        if axis in spec.nuisance.space:
            raise S2SError(f"{path}: '{axis}' is both a scientific axis and a nuisance hyperparameter")
        if len(set(map(repr, values))) != len(values):
            raise S2SError(f"{path}: scientific axis '{axis}' repeats a value ({values})")
        for value in values:
            _build(path, f"scientific axis '{axis}'", spec.base, {**constants, axis: value})
    return grid


def _check_nuisance(ablation: Ablation, budget: str, constants: dict[str, Any]) -> None:
    spec, path, b = ablation.spec, ablation.path, ablation.spec.budgets[budget]
    fixed, budget_overrides = flatten(spec.fixed), flatten(b.overrides)
    for key, dim in spec.nuisance.space.items():
        # `base` holds the untuned value (used when a budget tunes nothing, and by W&B grids); a budget
        # that tunes nothing may change it (a demo's faster lr), one that tunes may not.
        if key in fixed or key in PER_TRIAL_KEYS or (key in budget_overrides and b.nuisance_trials):
            raise S2SError(f"{path}: nuisance '{key}' is also set in fixed/budgets or per trial")
        _check_search_dim(path, key, dim, spec.base, constants)
    if b.nuisance_trials and not spec.nuisance.space:
        raise S2SError(
            f"{path}: budget '{budget}' asks for {b.nuisance_trials} nuisance trials per arm "
            "but nuisance.space is empty"
        )


def _arms(ablation: Ablation, budget: str, constants: dict[str, Any], grid: dict[str, list]) -> list[Arm]:
    """One arm per grid point, named from its config; each must be able to log the objective."""
    spec, path, tuned = ablation.spec, ablation.path, bool(ablation.spec.budgets[budget].nuisance_trials)
    axes = list(grid)
    arms: list[Arm] = []
    for point in itertools.product(*grid.values()):
        cfg = _build(path, "scientific grid", spec.base, {**constants, **dict(zip(axes, point))})
        arms.append(Arm(arm_name(cfg, axes), _normalise(cfg, axes)))
        _check_objective(path, spec.objective, cfg, tuned)
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise S2SError(f"{path}: two arms share the name '{dup}'; scientific values must differ visibly")
    return arms


def _check_objective(path: Path, objective: Objective, cfg: Config, tuned: bool) -> None:
    metric, task = objective.metric, M.task_of(cfg.data.name)
    if metric not in M.DIRECTIONS:
        raise S2SError(
            f"{path}: objective '{metric}' is not an optimisable metric (allowed: "
            f"{', '.join(sorted(M.DIRECTIONS))})"
        )
    if metric not in M.TASKS[task].logged:
        logged = sorted(m for m in M.TASKS[task].logged if m in M.DIRECTIONS)
        raise S2SError(
            f"{path}: objective '{metric}' is never logged for the {task} task "
            f"(data.name={cfg.data.name}; logged: {', '.join(logged)})"
        )
    if objective.direction and objective.direction != M.DIRECTIONS[metric]:
        raise S2SError(
            f"{path}: objective '{metric}' is to be {M.DIRECTIONS[metric]}d, not {objective.direction}d"
        )
    tuning = tuning_metric(metric)
    if tuned and tuning in (M.VAL_EXACT_MATCH, M.VAL_BLEU) and not cfg.eval.val_task_metric:
        raise S2SError(f"{path}: nuisance tuning on '{tuning}' needs eval.val_task_metric=true")


def count(n: int, noun: str) -> str:
    """`1 seed`, `3 seeds`: a number with its noun."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def grid_text(plan: Plan) -> str:
    """`16 arms x 1 seed`."""
    return f"{count(len(plan.arms), 'arm')} x {count(len(plan.seeds), 'seed')}"
