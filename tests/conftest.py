"""Shared fixtures: tiny configs that shrink the real defaults, and the local Multi30k copy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from s2s_lightning.config import build_config

REPO = Path(__file__).resolve().parents[1]
# Tokenized corpora are cached between runs (text.tokenize_all): the tests' own cache, not the user's.
os.environ.setdefault("S2S_CACHE_DIR", tempfile.mkdtemp(prefix="s2s-test-cache-"))
MULTI30K = Path(os.environ.get("S2S_MULTI30K_DIR", REPO.parent / "shared" / "data" / "multi30k"))

TINY = {
    "data.addition.train_size": 300,
    "data.addition.val_size": 40,
    "data.addition.test_size": 40,
    "data.batch_size": 32,
    "model.embedding_dim": 10,
    "model.hidden_dim": 7,
    "train.max_epochs": 1,
    "train.progress_bar": False,
    "tracking.wandb": "disabled",
}
TINY_MULTI30K = {
    **{k: v for k, v in TINY.items() if not k.startswith("data.addition")},
    "data.name": "multi30k",
    "data.dir": str(MULTI30K),
    "data.max_train_sentences": 300,
    "data.max_eval_sentences": 30,
    "model.hidden_dim": 16,
    "eval.max_len_b": 5,
    "eval.max_len_a": 0.5,
}


@pytest.fixture
def tiny_cfg():
    def make(**overrides):
        return build_config({}, {**TINY, **overrides})

    return make


@pytest.fixture
def tiny_multi30k_cfg():
    if not (MULTI30K / "train.de.gz").is_file():
        pytest.skip(f"no local Multi30k copy at {MULTI30K}")

    def make(**overrides):
        return build_config({}, {**TINY_MULTI30K, **overrides})

    return make


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL for RDB-storage tests: $S2S_TEST_POSTGRES_URL, else a throwaway server on
    loopback started from the machine's PostgreSQL binaries (as the `postgres` user when run as root);
    the test skips when neither is possible."""
    import glob
    import shutil
    import subprocess

    pytest.importorskip("psycopg", reason="pip install -e '.[postgres]'")
    if os.environ.get("S2S_TEST_POSTGRES_URL"):
        yield os.environ["S2S_TEST_POSTGRES_URL"]
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    if not bins[-1]:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    bindir = Path(bins[-1]).parent
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="s2s-postgres-"))  # not under pytest's 0700 root: postgres must enter
    data, port = root / "data", _free_port()
    if as_user:
        shutil.chown(root, "postgres")
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, timeout=120)  # noqa: E731
    out = run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "s2s")
    if out.returncode:
        pytest.skip(f"initdb failed: {out.stderr.strip()[-300:]}")
    out = run(
        bindir / "pg_ctl",
        "-D",
        data,
        "-l",
        root / "server.log",
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    if out.returncode:
        pytest.skip(f"PostgreSQL did not start: {out.stderr.strip()[-300:]}")
    try:
        out = run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "s2s", "studies")
        assert out.returncode == 0, out.stderr
        yield f"postgresql://s2s@127.0.0.1:{port}/studies"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
