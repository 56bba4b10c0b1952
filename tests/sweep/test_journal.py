"""The journal file holds whole records only: `sweep status` never writes to it, a last record cut short
(a crash or a full disk while it was appended) is refused in one line and dropped by `s2s sweep repair`,
and nothing is ever appended after it."""

from __future__ import annotations

import pytest

from s2s_lightning.cli import main as s2s
from s2s_lightning.errors import S2SError
from s2s_lightning.sweep.plan import expand, load_ablation
from s2s_lightning.sweep.status import sweep_status
from s2s_lightning.sweep.storage import open_storage, open_studies
from tests.conftest import REPO

ABLATION = REPO / "ablations" / "addition.yaml"


@pytest.fixture
def journal(tmp_path):
    """A journal holding the quick addition study (created, nothing run)."""
    path = tmp_path / "studies.journal"
    main, _ = open_studies(open_storage(str(path)), expand(load_ablation(ABLATION), "quick"))
    main.set_user_attr("note", "the last record")
    return path


def status(journal) -> list[str]:
    return ["sweep", "status", str(ABLATION), "--budget", "quick", "--storage", str(journal)]


def test_status_never_writes_to_the_storage(journal, tmp_path):
    """Every status appended a create-study record; a status of a missing storage created an empty one."""
    before = journal.read_bytes()
    for _ in range(2):
        assert "(study addition-quick not started)" not in sweep_status(ABLATION, "quick", str(journal))
    assert journal.read_bytes() == before
    missing = tmp_path / "nowhere" / "studies.journal"
    assert "not started" in sweep_status(ABLATION, "quick", str(missing))
    assert not missing.exists() and not missing.parent.exists()


def test_a_partial_last_record_is_refused_then_repaired(journal, capsys):
    whole = journal.read_bytes()
    cut = len(whole) - 20  # the last record, cut short
    journal.write_bytes(whole[:cut])
    start = whole[:cut].rfind(b"\n") + 1
    assert s2s(status(journal)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"s2s: error: Optuna journal {journal} ends in a partial record at byte {start} (written by a "
        f"process that crashed or ran out of disk; it never committed): drop it with s2s sweep repair "
        f"--storage {journal}"
    ]
    assert journal.read_bytes() == whole[:cut]  # refused: nothing appended after the partial record

    assert s2s(["sweep", "repair", "--storage", str(journal)]) == 0
    assert f"dropped the partial record at byte {start}" in capsys.readouterr().out
    assert journal.read_bytes() == whole[:start]
    assert journal.with_name("studies.journal.before-repair").read_bytes() == whole[:cut]
    assert s2s(status(journal)) == 0  # the study without its uncommitted last record
    assert s2s(["sweep", "repair", "--storage", str(journal)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_no_append_lands_after_a_partial_record(journal):
    """A storage opened before another process left a partial record must not glue its next record to
    it (which made the file corrupt mid-way: a raw JSONDecodeError for every later reader)."""
    main, _ = open_studies(open_storage(str(journal)), expand(load_ablation(ABLATION), "quick"))
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id"')  # another writer died mid-append
    with pytest.raises(S2SError, match="ends in a partial record at byte"):
        main.set_user_attr("later", 1)
    assert journal.read_bytes() == whole + b'{"op_code": 5, "worker_id"'


def test_a_corrupt_journal_is_refused_in_one_line(tmp_path, capsys):
    """A garbage journal read as 'not started', then failed with `AssertionError: Should not reach.`"""
    journal = tmp_path / "studies.journal"
    journal.write_bytes(b"this is not a journal\nnor this\n")
    assert s2s(status(journal)) == 2
    assert (
        s2s(["report", "--study", "addition-quick", "--storage", str(journal), "-o", str(tmp_path / "r")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(
        line.startswith(f"s2s: error: Optuna journal {journal} is corrupt at byte 0 (line 1 is not a journal")
        for line in err
    )
    assert s2s(["sweep", "repair", "--storage", str(journal)]) == 2
    assert journal.read_bytes() == b"this is not a journal\nnor this\n"
