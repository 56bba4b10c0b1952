"""Optuna storage and the studies of one ablation plan: opening, trial keys, liveness, reconciliation.

A plan lives in one *main* study (named `plan.study`) holding one trial per grid point x seed, and,
when its budget tunes nuisance hyperparameters, one *tuning* study per arm (`<study>/<arm>`) holding
that arm's nuisance trials. Per-arm tuning studies let Optuna's own TPE sampler and median/Hyperband
pruner condition on the arm's trials only, so no arm is pruned for being a worse architecture.

Exactly-once: `reconcile` (run by one coordinator) enqueues every missing tuning slot and grid point;
workers only claim WAITING trials (`claim`), which the storage hands to one worker each. A RUNNING
trial whose worker died is *stale*: its pid is gone (same host) or its heartbeat is old (any host);
`reconcile` fails it and enqueues a fresh attempt.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ..errors import S2SError
from ..records import RECORD_FILE
from .journal import CheckedJournal, check_journal
from .plan import SEED, Plan

# Trial and study attributes: every name a sweep writes into the storage and other processes (workers,
# the coordinator, `s2s sweep status`, `s2s report --study`) read. Declared here, imported where used.
# User attributes of every trial:
KIND, ARM, SLOT, RAN_IN = "kind", "arm", "slot", "ran_in"  # KIND: GRID or TUNE; RAN_IN: the sweep's run id
WORKER, HEARTBEAT, STALE = "worker", "heartbeat", "stale"
RUN_DIR = "run_dir"  # the trial's run directory, set before anything is written there
RESUMED = "resumed"  # it continued a run directory's checkpoint
ADOPTED = "adopted"  # it took a run trained before instead of training
STOPPED = "stopped"  # a trial stopped because the sweep was (SIGINT/SIGTERM): resumable, not failed
WAS_INTERRUPTED = "interrupted"  # its run was stopped by a signal (its record's status: interrupted)
EXIT_CODE, ERROR, WALL_TIME_S = "exit_code", "error", "wall_time_s"  # of `s2s train`; and its metrics
WANDB_ID = "wandb_id"  # the run's W&B id
DUPLICATE_OF = "duplicate_of"  # the number of the trial that already holds this grid point
TUNED_BY = "tuned_by"  # "<tuning study>#<trial>": where a grid trial's nuisance values came from
FIXED_PARAMS = "fixed_params"  # system attribute, Optuna's own (enqueue_trial): the params it must take
GRID, TUNE = "grid", "tune"
# User attributes of a main study:
PLAN_ATTR = "plan"  # the plan's fingerprint
REPORT_ARTIFACTS = "report_artifacts"  # file name -> [sha256, artifact id] of a report's uploads
TRIAL_ATTRIBUTES = (
    KIND,
    ARM,
    SLOT,
    RAN_IN,
    WORKER,
    HEARTBEAT,
    STALE,
    RUN_DIR,
    RESUMED,
    ADOPTED,
    STOPPED,
    WAS_INTERRUPTED,
    EXIT_CODE,
    ERROR,
    WALL_TIME_S,
    WANDB_ID,
    DUPLICATE_OF,
    TUNED_BY,
)
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0  # a trial on another host is stale after this long without a heartbeat
CLAIM_GRACE_S = 30.0  # a claimed trial whose worker never wrote its identity is stale after this long
DEFAULT_JOURNAL = Path("optuna") / "studies.journal"  # under --runs-dir: one file, every study
DEFAULT_RUNS_DIR = "runs"


def default_storage(runs_dir: str | Path = DEFAULT_RUNS_DIR) -> str:
    """The storage of every command given no --storage: one journal file under the runs folder."""
    return str(Path(runs_dir) / DEFAULT_JOURNAL)


def artifact_dir(storage: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """Optuna's artifact store of a storage (report files): beside a journal, else RUNS/optuna/artifacts."""
    return (Path(storage).parent if "://" not in storage else Path(runs_dir) / "optuna") / "artifacts"


def redact(text: str) -> str:
    """Hide passwords in storage URLs (`postgresql://user:***@host/db`) in any message or record."""
    return re.sub(r"(\w[\w+.-]*://[^:/@\s]*:)[^/\s]*@", r"\1***@", str(text))  # up to the last @


def _local_file(target: str) -> Path | None:
    """The file a storage lives in: a bare path (a journal) or sqlite:///PATH; None for a server."""
    if "://" not in target:
        return Path(target)
    return Path(target.removeprefix("sqlite:///")) if target.startswith("sqlite:///") else None


def storage_identity(url: str | None, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> str:
    """The storage as a run records which one made it (S2S_STORAGE): a journal or SQLite file by its
    absolute path (the same file from any working directory), a server by its URL, password hidden."""
    target = url or default_storage(runs_dir)
    local = _local_file(target)
    if local is None:
        return redact(target)
    return str(local.resolve()) if "://" not in target else f"sqlite:///{local.resolve()}"


def storage_label(url: str | None, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> str:
    """The storage as messages and reports name it: the URL with its password hidden."""
    return redact(url) if url else default_storage(runs_dir)


def open_storage(
    url: str | None, runs_dir: str | Path = DEFAULT_RUNS_DIR, create: bool = True
) -> BaseStorage:
    """The one way to open Optuna storage: a journal file (default; safe for several workers on one
    node) or any Optuna RDB URL.

    A bare path is a journal file; `sqlite:///...`, `postgresql://...`, `mysql://...` are RDB URLs.
    With `create` False (readers such as `s2s report`) a journal or SQLite file that does not exist is
    an error rather than a new empty storage. Anything unreachable fails here, before any work starts,
    with the password redacted.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target = url or default_storage(runs_dir)
    if not create and not storage_exists(url, runs_dir):
        kind = "journal file" if "://" not in target else "SQLite file"
        raise S2SError(f"Optuna storage {redact(target)} does not exist (no {kind} there)")
    try:
        if "://" not in target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            if Path(target).is_file():
                check_journal(Path(target))
            storage: BaseStorage = optuna.storages.JournalStorage(CheckedJournal(target))
        elif target.split(":", 1)[0].split("+")[0] in ("sqlite", "postgresql", "mysql"):
            connect = {}
            if target.startswith("sqlite:///"):
                Path(target.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            else:  # an unreachable server fails in seconds, not after the driver's default minutes
                connect = {"connect_args": {"connect_timeout": 10}}
            storage = optuna.storages.RDBStorage(target, engine_kwargs=connect)
        else:
            raise S2SError(
                f"unsupported Optuna storage '{redact(target)}' (a journal file path, "
                "sqlite:///FILE, postgresql://... or mysql://...)"
            )
        storage.get_all_studies()  # reach it now
    except S2SError:
        raise
    except ImportError:
        raise S2SError(
            f"Optuna storage {redact(target)} needs its database driver "
            "(postgresql: pip install 's2s-lightning[postgres]'; mysql: pip install pymysql)"
        ) from None
    except Exception as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        first = (why.strip().splitlines() or [""])[0]
        raise S2SError(
            f"cannot open Optuna storage {redact(target)}: {type(exc).__name__}: {redact(first)}"
        ) from None
    return storage


def storage_exists(url: str | None, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> bool:
    """False for a journal or SQLite file that is not there (a database server: always True)."""
    local = _local_file(url or default_storage(runs_dir))
    return local is None or local.is_file()


def foreign_run_dirs(study_dir: Path, studies: list[optuna.Study]) -> list[Path]:
    """Run directories under a study's folder that none of `studies` made: every trial names its run
    directory (user attr `run_dir`) before anything is written there, so a record nobody names belongs
    to another study of the same name (another storage) or was put there by hand."""
    ours = {
        Path(str(t.user_attrs["run_dir"])).parts[-2:]
        for s in studies
        for t in s.get_trials(deepcopy=False)
        if t.user_attrs.get("run_dir")
    }
    found = sorted(p.parent for p in Path(study_dir).glob(f"*/*/{RECORD_FILE}"))
    return [d for d in found if d.parts[-2:] not in ours and not d.parts[-2].startswith(".")]


def tuning_study_name(plan: Plan, arm: str) -> str:
    return f"{plan.study}/{arm}"


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
    return f"{path}: {old!r} -> {new!r}"


def _check_plan(
    main: optuna.Study,
    plan: Plan,
    fingerprint: dict[str, Any],
    create: bool,
    label: str,
    runs: str | Path | None,
) -> None:
    """Stamp a new main study with its plan, or refuse one made from another version of the file."""
    saved = main.user_attrs.get(PLAN_ATTR)
    if saved is None and create:
        main.set_user_attr(PLAN_ATTR, fingerprint)
        main.set_user_attr("ablation", str(plan.ablation.path))
        main.set_user_attr("budget", plan.budget)
        main.set_user_attr("objective", plan.objective)
    elif saved is not None and saved != fingerprint:
        folder = Path(runs) / plan.study if runs is not None else None
        # As the README tells it: the new study adopts every finished run it would train again.
        also = (
            f"; the new study adopts the finished runs in {folder} whose config it trains (adding seeds "
            "retrains nothing); runs of a config it no longer trains must be moved away first"
            if folder is not None and folder.is_dir()
            else ""
        )
        raise S2SError(
            f"study '{plan.study}' was made from a different version of {plan.ablation.path} "
            f"({_first_difference(saved, fingerprint)}); restore the file, or start over: delete the study "
            f"(optuna delete-study --study-name {plan.study} --storage {label}){also}"
        )


def open_studies(
    storage: BaseStorage,
    plan: Plan,
    create: bool = True,
    pruner: optuna.pruners.BasePruner | None = None,
    label: str = "...",
    runs: Path | None = None,
) -> tuple[optuna.Study | None, dict[str, optuna.Study]]:
    """(main study, {arm: tuning study}); None / {} when `create` is False and they do not exist.

    `pruner` is attached to the tuning studies (workers need it; the coordinator and `status` do
    not); workers set each tuning trial's sampler. The main study samples nothing: its params are
    fixed. `label` names the storage in messages.
    """
    fingerprint = json.loads(json.dumps(plan.fingerprint()))
    names = {s.study_name for s in storage.get_all_studies()}
    if plan.study not in names and not create:
        return None, {}
    # Without `create` nothing is written: create_study(load_if_exists) appends a record to a journal.
    main = (
        optuna.create_study(
            study_name=plan.study, storage=storage, direction=plan.direction, load_if_exists=True
        )
        if create
        else optuna.load_study(study_name=plan.study, storage=storage)
    )
    _check_plan(main, plan, fingerprint, create, label, runs)
    tuning = {}
    if plan.nuisance_trials:
        for arm in plan.arms:
            name = tuning_study_name(plan, arm.name)
            if create:
                tuning[arm.name] = optuna.create_study(
                    study_name=name,
                    storage=storage,
                    direction=plan.tuning_direction,
                    load_if_exists=True,
                    pruner=pruner,
                )
            elif name in names:
                tuning[arm.name] = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
    return main, tuning


# --- liveness -------------------------------------------------------------------------------------


def _proc_start(pid: int) -> str | None:
    """The process start time in clock ticks since boot (Linux), which tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _proc_start(os.getpid())}


def _pid_alive(info: dict[str, Any]) -> bool | None:
    """True/False for a worker on this host, None when it runs elsewhere (only heartbeats tell)."""
    if info.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = _proc_start(int(info["pid"]))
    return start is None or info.get("start") in (None, start)


def is_stale(trial: FrozenTrial, now: float | None = None) -> bool:
    """A RUNNING trial whose worker is gone."""
    if trial.state != TrialState.RUNNING:
        return False
    info = trial.user_attrs.get(WORKER)
    if info:
        alive = _pid_alive(info)
        if alive is not None:
            return not alive
    beat = trial.user_attrs.get(HEARTBEAT)
    if beat is None and trial.datetime_start is not None:
        # Claimed but never marked: a live claimant writes its identity milliseconds after claiming, so
        # one that has not within CLAIM_GRACE_S died in between (kill -9 at the wrong moment).
        limit = CLAIM_GRACE_S if not info else STALE_AFTER_S
        return (now or time.time()) - trial.datetime_start.timestamp() > limit
    return beat is not None and (now or time.time()) - beat > STALE_AFTER_S


def fail_stale(storage: BaseStorage, study: optuna.Study) -> list[FrozenTrial]:
    """Fail the study's stale trials (flagged so they are retried); returns the trials as they now are."""
    trials = study.get_trials(deepcopy=False)
    stale = [t for t in trials if is_stale(t)]
    for t in stale:
        storage.set_trial_user_attr(t._trial_id, STALE, True)
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # finished meanwhile: its worker was alive after all
            pass
    return study.get_trials(deepcopy=False) if stale else trials


def retryable(trial: FrozenTrial) -> bool:
    """A failure that says nothing about the config: its worker died or was interrupted."""
    return trial.state == TrialState.FAIL and bool(
        trial.user_attrs.get(STALE) or trial.user_attrs.get("interrupted")
    )


RETRIES_PER_RUN = 2  # attempts killed from outside (dead worker, kill -9) retried within one `sweep run`


def _settled(attempts: list[FrozenTrial], run_id: str) -> bool:
    """Does this key need no new attempt? Failures are retried once per `s2s sweep run`; kills are
    retried (resumed) at most RETRIES_PER_RUN times, so a trial the OOM killer always ends cannot loop."""
    if sum(retryable(t) and t.user_attrs.get(RAN_IN) == run_id for t in attempts) > RETRIES_PER_RUN:
        return True
    for t in attempts:
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING):
            return True
        if t.state == TrialState.FAIL and not retryable(t) and t.user_attrs.get(RAN_IN) == run_id:
            return True
    return False


def grid_key(t: FrozenTrial) -> tuple[Any, Any]:
    return t.user_attrs.get(ARM), t.user_attrs.get(SEED)


def reconcile(
    storage: BaseStorage, plan: Plan, main: optuna.Study, tuning: dict[str, optuna.Study], run_id: str
) -> int:
    """Fail stale trials and enqueue every missing tuning slot and grid point; returns the count."""
    added = 0
    for arm in plan.arms:
        if arm.name not in tuning:
            continue
        study = tuning[arm.name]
        trials = fail_stale(storage, study)
        for slot in range(plan.nuisance_trials):
            if not _settled([t for t in trials if t.user_attrs.get(SLOT) == slot], run_id):
                study.enqueue_trial({}, user_attrs={KIND: TUNE, ARM: arm.name, SLOT: slot})
                added += 1
    trials = fail_stale(storage, main)
    for arm in plan.arms:
        for seed in plan.seeds:
            if not _settled([t for t in trials if grid_key(t) == (arm.name, seed)], run_id):
                main.enqueue_trial(
                    {**arm.values, SEED: seed}, user_attrs={KIND: GRID, ARM: arm.name, SEED: seed}
                )
                added += 1
    return added


def tuning_ready(study: optuna.Study | None) -> tuple[bool, FrozenTrial | None]:
    """(has the arm's tuning finished, its best complete trial). No tuning study: (True, None)."""
    if study is None:
        return True, None
    trials = study.get_trials(deepcopy=False)
    if any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials):
        return False, None
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return True, None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return True, pick(done, key=lambda t: cast(float, t.value))  # COMPLETE: has a value


def claim(
    storage: BaseStorage, plan: Plan, main: optuna.Study, tuning: dict[str, optuna.Study]
) -> tuple[optuna.Study | None, FrozenTrial | None, bool]:
    """Take one WAITING trial: (study, trial, anything still waiting).

    Tuning trials go first, lowest slot across arms (arms tune side by side); a grid trial is taken
    only once its arm's tuning has finished, as it trains with the arm's best nuisance values.
    """
    waiting = False
    candidates: list[tuple[Any, optuna.Study, FrozenTrial]] = []
    for study in tuning.values():
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            candidates.append(((0, t.user_attrs.get(SLOT, 0), t.number), study, t))
    ready: dict[str, bool] = {}
    for t in main.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        arm: str = t.user_attrs.get(ARM, "")
        if arm not in ready:
            ready[arm] = tuning_ready(tuning.get(arm))[0]
        waiting = True
        if ready[arm]:
            candidates.append(((1, 0, t.number), main, t))
    for _, study, t in sorted(candidates, key=lambda c: c[0]):
        waiting = True
        try:
            with _claim_guard(storage):
                if storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                    return study, t, True
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None, None, waiting


@contextmanager
def _claim_guard(storage: BaseStorage) -> Iterator[None]:
    """Make WAITING -> RUNNING atomic where the storage is not. The journal file replays its log under
    a lock and PostgreSQL/MySQL lock the trial's row (SELECT ... FOR UPDATE), so only one claimant sees
    WAITING; SQLite has no row locks, and two processes could both read WAITING and both start the
    trial. Every claimant of an SQLite study opens the same database file, so an flock beside it
    serialises their claims (milliseconds each)."""
    backend = getattr(storage, "_backend", storage)  # optuna's cache wraps an RDB storage
    url = backend.engine.url if isinstance(backend, optuna.storages.RDBStorage) else None
    if url is None or url.get_backend_name() != "sqlite" or not url.database:
        yield
        return
    with open(f"{url.database}.claim-lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
