"""Optuna's journal file, kept whole: a journal with a partial last record (a crash or a full disk while
it was appended) is refused with a one-line fix (`s2s sweep repair`), and appends never glue a record
to a partial one or leave one half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import get_lock_file  # the lock Optuna's own appends take

from ..errors import S2SError


def _repair_hint(path: Path) -> str:
    return f"s2s sweep repair --storage {path}"


def check_journal(path: Path) -> None:
    """Refuse a journal Optuna would misread: a last record cut short (a crash or a full disk while it
    was appended; it never committed, and the next append would glue a record to it, corrupting the
    file mid-way) or a line that is not a journal record."""
    offset = 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                raise S2SError(
                    f"Optuna journal {path} ends in a partial record at byte {offset} (written by a "
                    f"process that crashed or ran out of disk; it never committed): drop it with "
                    f"{_repair_hint(path)}"
                )
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or "op_code" not in record:
                raise S2SError(
                    f"Optuna journal {path} is corrupt at byte {offset} (line {number} is not a journal "
                    "record); restore the file from a backup, or start the study again in a new one"
                )
            offset += len(line)


def repair_journal(path: Path) -> str:
    """Drop a journal's partial last record (it never committed), the file as it was kept beside it."""
    if not path.is_file():
        raise S2SError(f"Optuna journal {path} does not exist")
    with get_lock_file(JournalFileSymlinkLock(str(path))):  # no worker appends meanwhile
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end == len(data):
            check_journal(path)
            return f"{path}: every record is whole; nothing to repair"
        backup = path.with_name(path.name + ".before-repair")
        backup.write_bytes(data)
        os.truncate(path, end)
        try:
            check_journal(path)
        except S2SError:
            backup.replace(path)  # put it back as it was: more than a partial record is wrong
            raise
    return (
        f"dropped the partial record at byte {end} of {path} ({len(data) - end} bytes; it never "
        f"committed); the file as it was is kept as {backup}"
    )


class CheckedJournal(JournalFileBackend):
    """Optuna's journal file that never appends after a partial record, and takes back its own append
    when it fails part-way (a full disk), so every record in the file is whole."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        path = Path(self._file_path)
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        with get_lock_file(self._lock):
            with open(path, "ab+") as f:
                size = f.seek(0, os.SEEK_END)
                if size:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        start = path.read_bytes().rfind(b"\n") + 1
                        raise S2SError(
                            f"Optuna journal {path} ends in a partial record at byte {start}: nothing "
                            f"more is written to it; drop it with {_repair_hint(path)}"
                        )
                try:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    f.truncate(size)  # the records before this append are all that committed
                    raise S2SError(
                        f"could not append to Optuna journal {path} ({exc.strerror or exc}); it is "
                        "left as it was before this write"
                    ) from None
