"""`s2s reproduce RUN`: the commands that train a run again from its record, or (`--run-dir NEW`) running
them. The code is the run's commit plus, for a run from an edited tree, RUN/git.diff (its staged,
unstaged and untracked package changes); the config is RUN/config.yaml (the seed included); the
environment is RUN/environment.txt (pip constraints).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import AXES
from .environment import git_toplevel, installed_distributions
from .errors import S2SError
from .records import CONFIG_FILE, ENVIRONMENT_FILE, GIT_DIFF_FILE, RunKey, RunRecord, read_record

# Runs the CLI of the checkout named by $S2S_CODE (python -m would put the working directory first).
BOOT = (
    "import os, sys; sys.path.insert(0, os.environ['S2S_CODE']); "
    "from s2s_lightning.cli import main; sys.exit(main())"
)


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _plan(run_dir: Path) -> tuple[RunRecord, Path, str]:
    """(record, repository, commit): refused when the run names no commit or the repository lacks it."""
    record = read_record(run_dir)
    commit = record.get(RunKey.GIT_COMMIT)
    if not commit:
        raise S2SError(
            f"{run_dir} records no git commit (trained outside a git checkout): nothing to check out"
        )
    if not (run_dir / CONFIG_FILE).is_file():
        raise S2SError(
            f"{run_dir / CONFIG_FILE} not found: is {run_dir} a run directory written by 's2s train'?"
        )
    repo = git_toplevel()
    if repo is None:
        raise S2SError(
            "s2s reproduce runs from a git checkout of s2s-lightning; this installation is not one"
        )
    if _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo).returncode:
        raise S2SError(
            f"commit {commit[:12]} of {run_dir} is not in the repository {repo}; fetch it (git fetch) first"
        )
    if record.get(RunKey.GIT_DIRTY) and not (run_dir / GIT_DIFF_FILE).is_file():
        raise S2SError(
            f"{run_dir} was trained from an edited tree but holds no {GIT_DIFF_FILE} (a run from before "
            "diffs were recorded): its code cannot be rebuilt"
        )
    return record, repo, commit


def _train_args(record: RunRecord, run_dir: Path, new_dir: str) -> list[str]:
    extra = [a for a in (record.get(RunKey.AXES) or {}) if a not in AXES]
    axes = [w for a in extra for w in ("--axis", a)]
    return ["train", "--config", str(run_dir / CONFIG_FILE), "--run-dir", new_dir, *axes]


def commands(run_dir: Path, new_dir: str = "runs/reproduced") -> list[str]:
    """The shell commands that reproduce `run_dir` in a fresh clone."""
    run_dir = Path(run_dir).resolve()
    record, repo, commit = _plan(run_dir)
    origin = (_git("remote", "get-url", "origin", cwd=repo).stdout or "").strip() or str(repo)
    diff = run_dir / GIT_DIFF_FILE
    lines = [
        f"# {run_dir}: commit {commit[:12]}"
        + (f", with the changes in {GIT_DIFF_FILE}" if record.get(RunKey.GIT_DIRTY) else ", a clean tree")
        + f"; seed {record.get(RunKey.SEED)}",
        f"git clone {shlex.quote(origin)} s2s-reproduce && cd s2s-reproduce",
        f"git checkout --quiet {commit}",
    ]
    if record.get(RunKey.GIT_DIRTY):
        lines.append(f"git apply {shlex.quote(str(diff))}")
    env = run_dir / ENVIRONMENT_FILE
    constraints = f" -c {shlex.quote(str(env))}" if env.is_file() else ""
    lines.append(f"python -m pip install{constraints} -e .")
    lines.append(shlex.join(["s2s", *_train_args(record, run_dir, new_dir)]))
    return lines


def reproduce(run_dir: Path, new_dir: Path) -> int:
    """Check out the run's code (its commit, its diff applied) in a temporary clone and train its config
    into `new_dir` with this Python (the differences from RUN/environment.txt are printed first)."""
    run_dir, new_dir = Path(run_dir).resolve(), Path(new_dir).resolve()
    record, repo, commit = _plan(run_dir)
    if new_dir.exists():
        raise S2SError(f"--run-dir {new_dir} exists; name a new folder for the reproduction")
    for line in _environment_differences(run_dir):
        print(line, flush=True)
    with tempfile.TemporaryDirectory(prefix="s2s-reproduce-") as tmp:
        code = Path(tmp) / "code"
        for step in (
            ["clone", "--quiet", "--shared", "--no-checkout", str(repo), str(code)],
            ["checkout", "--quiet", commit],
        ):
            done = _git(*step, cwd=code if step[0] == "checkout" else Path(tmp))
            if done.returncode:
                raise S2SError(f"git {step[0]} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        if record.get(RunKey.GIT_DIRTY):
            done = _git("apply", str(run_dir / GIT_DIFF_FILE), cwd=code)
            if done.returncode:
                why = (done.stderr.strip().splitlines() or ["?"])[0]
                raise S2SError(f"{run_dir / GIT_DIFF_FILE} does not apply to commit {commit[:12]}: {why}")
        print(
            f"code: commit {commit[:12]}" + (" with its diff" if record.get(RunKey.GIT_DIRTY) else ""),
            flush=True,
        )
        cmd = [sys.executable, "-c", BOOT, *_train_args(record, run_dir, str(new_dir))]
        return subprocess.run(cmd, env=dict(os.environ, S2S_CODE=str(code))).returncode


def _environment_differences(run_dir: Path) -> list[str]:
    env = run_dir / ENVIRONMENT_FILE
    if not env.is_file():
        return [f"note: {run_dir} records no {ENVIRONMENT_FILE}; training with this environment"]
    then = dict(line.split("==", 1) for line in env.read_text().splitlines() if "==" in line)
    now = dict(line.split("==", 1) for line in installed_distributions().splitlines() if "==" in line)
    changed = [f"{n} {then[n]} -> {now.get(n, 'absent')}" for n in sorted(then) if now.get(n) != then[n]]
    if not changed:
        return ["environment: every distribution as the run had it"]
    shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
    return [f"note: this environment differs from the run's ({shown}); install with pip -c {env} to match"]


def run_reproduce(args: argparse.Namespace) -> int:
    """`s2s reproduce RUN [--run-dir NEW]`."""
    if args.run_dir is None:
        print("\n".join(commands(args.run)))
        return 0
    return reproduce(args.run, args.run_dir)
