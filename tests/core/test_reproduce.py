"""A run from an edited tree records its diff and environment, and `s2s reproduce` trains it again, in a
fresh clone, to the same validation perplexity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "data.addition.train_size=300",
    "data.addition.val_size=40",
    "data.addition.test_size=40",
    "data.batch_size=32",
    "model.embedding_dim=10",
    "model.hidden_dim=7",
    "train.max_epochs=1",
    "train.progress_bar=false",
    "tracking.wandb=disabled",
    "train.threads=1",
]
# A local edit that changes the numbers: every initial weight halved.
EDIT = """

_plain_init = Seq2Seq.__init__


def _halved_init(self, *args, **kwargs):
    _plain_init(self, *args, **kwargs)
    with torch.no_grad():
        for p in self.parameters():
            p.mul_(0.5)


Seq2Seq.__init__ = _halved_init
"""


def s2s(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "s2s_lightning", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def val_ppl(run: Path) -> float:
    return json.loads((run / "record.json").read_text())["metrics"]["val/ppl"]


@pytest.mark.integration
def test_a_run_from_a_dirty_tree_is_reproduced_from_its_record(tmp_path):
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("needs the project as a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    with open(clone / "s2s_lightning" / "model.py", "a") as f:
        f.write(EDIT)
    (clone / "s2s_lightning" / "extra_note.py").write_text('"""An untracked module."""\n')
    trained = s2s("train", "--run-dir", str(tmp_path / "r1"), *TINY, cwd=clone)  # the clone's own code
    assert trained.returncode == 0, trained.stderr
    record = json.loads((tmp_path / "r1" / "record.json").read_text())
    assert record["git_dirty"] is True and record["git_diff"] == "git.diff"
    assert record["untracked"] == ["s2s_lightning/extra_note.py"]
    diff = (tmp_path / "r1" / "git.diff").read_text()
    assert "_halved_init" in diff and "b/s2s_lightning/extra_note.py" in diff
    assert "torch==" in (tmp_path / "r1" / "environment.txt").read_text()

    printed = s2s("reproduce", str(tmp_path / "r1"), cwd=tmp_path)
    lines = printed.stdout.splitlines()
    assert printed.returncode == 0 and f"git checkout --quiet {record['git_commit']}" in lines
    assert f"git apply {tmp_path / 'r1' / 'git.diff'}" in lines
    assert lines[-1].startswith(f"s2s train --config {tmp_path / 'r1' / 'config.yaml'} --run-dir ")

    again = s2s("reproduce", str(tmp_path / "r1"), "--run-dir", str(tmp_path / "r2"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert val_ppl(tmp_path / "r2") == val_ppl(tmp_path / "r1")
    assert (tmp_path / "r2" / "git.diff").read_text() == diff  # the reproduction ran the edited code

    plain = s2s("train", "--run-dir", str(tmp_path / "r0"), *TINY, cwd=tmp_path)  # the commit alone
    assert plain.returncode == 0 and val_ppl(tmp_path / "r0") != val_ppl(tmp_path / "r1")

    record["git_commit"] = "f" * 40
    (tmp_path / "r1" / "record.json").write_text(json.dumps(record))
    refused = s2s("reproduce", str(tmp_path / "r1"), cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        f"s2s: error: commit ffffffffffff of {tmp_path / 'r1'} is not in the repository {REPO}; "
        "fetch it (git fetch) first"
    )
