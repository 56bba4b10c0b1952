"""`s2s sweep run|worker|status|wandb` and `s2s dashboard`: the command handlers (parsers in cli.py)."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from pathlib import Path

from ..errors import S2SError
from ..records import atomic_write_text
from .coordinator import SweepInterrupted, join_sweep, run_sweep
from .journal import repair_journal
from .launch import SweepLaunch
from .plan import FULL, expand, load_ablation
from .status import dry_run, sweep_status
from .storage import artifact_dir, default_storage, open_storage, storage_label
from .wandb_grid import render_sweep


def interrupted_line(args: argparse.Namespace, what: str) -> str:
    """One line for stderr: what was stopped and the command that continues it."""
    flags = "" if args.budget == FULL else f" --budget {args.budget}"
    flags += f" --storage {args.storage}" if args.storage else ""
    flags += f" --runs-dir {args.runs_dir}" if str(args.runs_dir) != "runs" else ""
    return (
        "s2s: sweep interrupted: running trials were stopped and keep their last checkpoint (finished "
        f"ones are kept); continue with: s2s sweep {what} {args.ablation}{flags}"
    )


def _launch(args: argparse.Namespace, what: str, launch):
    """`launch` (run_sweep or join_sweep) with the command's arguments; None, after one line on stderr,
    when Ctrl-C or SIGTERM stopped it."""
    try:
        return launch(
            SweepLaunch(
                args.ablation,
                args.budget,
                args.storage,
                args.workers,
                args.gpus,
                args.trials_per_gpu,
                runs_dir=args.runs_dir,
                gpus_per_trial=args.gpus_per_trial,
                wait_s=getattr(args, "wait", 0.0),
            )
        )
    except (SweepInterrupted, KeyboardInterrupt) as exc:
        print(interrupted_line(args, what), file=sys.stderr)
        return Stopped(128 + getattr(exc, "signum", signal.SIGINT))


class Stopped(int):
    """A sweep command's exit code after a signal stopped it: 130 for Ctrl-C, 143 for SIGTERM."""


def _cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        print(dry_run(args.ablation, args.budget, args.runs_dir))
        return 0
    out = _launch(args, "run", run_sweep)
    if isinstance(out, Stopped):
        return int(out)
    missing = sum(c["state"] != "done" for r in out["status"] for c in r["seeds"].values())
    return 0 if not missing else 1


def _cmd_worker(args: argparse.Namespace) -> int:
    n = _launch(args, "worker", join_sweep)
    if isinstance(n, Stopped):
        return int(n)
    print(f"workers ran {n} trial(s); nothing left waiting")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(sweep_status(args.ablation, args.budget, args.storage, args.runs_dir))
    return 0


def _cmd_wandb(args: argparse.Namespace) -> int:
    text = render_sweep(expand(load_ablation(args.ablation), args.budget), args.output)
    if args.output:
        atomic_write_text(Path(args.output), text)
        print(f"wrote {args.output}; start it with: wandb sweep {args.output}")
    else:
        print(text, end="")
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    """`s2s dashboard`: optuna-dashboard on the sweep's storage."""
    try:
        import optuna_dashboard  # a web server's worth of imports, for this command only
    except ImportError:
        raise S2SError("s2s dashboard needs optuna-dashboard: pip install -e '.[dashboard]'") from None
    from optuna.artifacts import FileSystemArtifactStore

    check_port(args.port)
    try:
        store = open_storage(args.storage, args.runs_dir, create=False)  # a typo'd --runs-dir is an error
    except S2SError as exc:
        if args.storage:
            raise
        raise S2SError(
            f"{exc}: no sweep has run with --runs-dir {args.runs_dir}; name the runs folder of a "
            "sweep, or its --storage"
        ) from None
    print(
        f"optuna-dashboard for {storage_label(args.storage, args.runs_dir)} on http://127.0.0.1:{args.port}/"
    )
    target = args.storage or default_storage(args.runs_dir)
    artifacts = FileSystemArtifactStore(str(artifact_dir(target, args.runs_dir)))  # the reports' files
    optuna_dashboard.run_server(store, host="127.0.0.1", port=args.port, artifact_store=artifacts)
    return 0


def check_port(port: int) -> None:
    """Refuse a port that is out of range or taken, before saying where the dashboard listens."""
    if not 1 <= port <= 65535:
        raise S2SError(f"--port {port} is not a TCP port (1 to 65535)")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise S2SError(
                f"--port {port}: 127.0.0.1:{port} is not free ({exc.strerror}); pass another --port"
            ) from None


def _cmd_repair(args: argparse.Namespace) -> int:
    target = args.storage or default_storage(args.runs_dir)
    if "://" in target:
        raise S2SError(
            f"--storage {storage_label(target)}: only a journal file is repaired (a database is not)"
        )
    print(repair_journal(Path(target)))
    return 0


# `s2s sweep ACTION` (parsers in cli.py)
COMMANDS = {
    "run": _cmd_run,
    "worker": _cmd_worker,
    "status": _cmd_status,
    "wandb": _cmd_wandb,
    "repair": _cmd_repair,
}


def run_command(args: argparse.Namespace) -> int:
    """`s2s sweep SUBCOMMAND`."""
    return COMMANDS[args.sweep_command](args)
