"""The committed reports rebuild from the records committed beside them (reports/NAME/records.tar.gz):
the command each README gives, run in a fresh folder holding only the archive and the note, writes the
same README and tables byte for byte, and the same figures pixel for pixel."""

import shlex
import shutil

import matplotlib.image
import numpy as np
import pytest

from s2s_lightning.cli import main as s2s
from tests.conftest import REPO

REPORTS = sorted(p.parent for p in (REPO / "reports").glob("*/records.tar.gz"))


def test_the_addition_report_keeps_its_records():
    assert REPO / "reports" / "addition" in REPORTS


def _command(readme: str) -> list[str]:
    block = readme.split("This report was produced by:\n\n```sh\n", 1)[1].split("\n```", 1)[0]
    words = shlex.split(block)
    assert words[:2] == ["s2s", "report"] and "--records" in words, block
    return words[2:]


@pytest.mark.parametrize("report", REPORTS, ids=[p.name for p in REPORTS])
def test_a_committed_report_rebuilds_from_its_records(report, tmp_path, monkeypatch):
    readme = (report / "README.md").read_text(encoding="utf-8")
    args = _command(readme)
    where = report.relative_to(REPO)
    (tmp_path / where).mkdir(parents=True)
    for name in ("records.tar.gz", "how.md"):
        if (report / name).is_file():
            shutil.copy(report / name, tmp_path / where / name)
    monkeypatch.chdir(tmp_path)
    assert s2s(["report", *args]) == 0
    rebuilt = tmp_path / where
    assert (rebuilt / "README.md").read_text(encoding="utf-8") == readme
    committed = sorted(p.relative_to(report) for p in (report / "tables").iterdir())
    assert sorted(p.relative_to(rebuilt) for p in (rebuilt / "tables").iterdir()) == committed
    for name in committed:
        assert (rebuilt / name).read_bytes() == (report / name).read_bytes(), name
    figures = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert sorted(p.name for p in (rebuilt / "figures").glob("*.png")) == figures
    for name in figures:
        mine, theirs = (matplotlib.image.imread(d / "figures" / name) for d in (rebuilt, report))
        assert mine.shape == theirs.shape and np.abs(mine - theirs).max() < 0.05, name
