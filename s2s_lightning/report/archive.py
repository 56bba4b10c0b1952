"""A report's records in one file beside it, so that the report can be built again without its runs.

`s2s report ... --save-records` writes OUT/records.tar.gz: every file of every run and evaluation the
report read (records, histories, hypotheses and references, per-sentence scores, analyses,
evaluations, vocabularies), without checkpoints, W&B folders and training logs, and, for a study, its
journal file. Paths are stored as the report read them (relative to the folder it ran in), members
sorted, times and owners zeroed, so the same records make the same bytes.

`s2s report --records OUT/records.tar.gz --study NAME ...` (or `--runs DIR`) unpacks it into a temporary
folder and builds the report there, reading the same relative paths: the README, tables and figures
come out as they were (tests/report/test_committed.py rebuilds the committed reports this way).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import S2SError
from ..records import atomic_write_bytes
from .load import ReportData, RunsSource, Source, StudySource

ARCHIVE = "records.tar.gz"
SKIP_DIRS = {"checkpoints", "wandb"}
SKIP_FILES = {"train.log", ".lock"}


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if path.is_file() and not SKIP_DIRS & set(rel[:-1]) and path.name not in SKIP_FILES:
            yield path


def _relative(path: Path) -> Path:
    """`path` as the report read it, relative to the current folder (an archive holds no absolute or
    outside path: it must unpack anywhere)."""
    rel = Path(os.path.relpath(Path(path).resolve(), Path.cwd().resolve()))
    if rel.is_absolute() or rel.parts[:1] == ("..",):
        raise S2SError(f"--save-records: {path} is outside the current folder; run s2s report from above it")
    return rel


def pack(data: ReportData, source: Source, out_dir: Path) -> Path:
    """OUT/records.tar.gz of what the report was built from; returns its path."""
    folders = [Path(d) for d in data.runs["run_dir"]] + [Path(d) for d in data.evals.get("eval_dir", [])]
    files = {_relative(f) for folder in folders for f in _files(folder)}
    if isinstance(source, StudySource) and Path(source.storage).is_file():
        files.add(_relative(Path(source.storage)))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            info = tarfile.TarInfo(rel.as_posix())
            content = rel.read_bytes()
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    path = Path(out_dir) / ARCHIVE
    atomic_write_bytes(path, gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0))
    return path


@contextlib.contextmanager
def unpacked(archive: Path | str) -> Iterator[Path]:
    """A temporary folder holding the archive's files, removed afterwards."""
    archive = Path(archive)
    if not archive.is_file():
        raise S2SError(f"--records {archive} not found (a report's records.tar.gz)")
    with tempfile.TemporaryDirectory(prefix="s2s-records-") as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")  # no absolute paths, links out or devices
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise S2SError(f"--records {archive} is not a readable records archive: {exc}") from None
        yield Path(tmp)


def check_source(source: Source) -> None:
    """--records reads the paths --runs or --study name inside the archive: they must be relative."""
    paths = list(source.dirs) if isinstance(source, RunsSource) else []
    if isinstance(source, StudySource) and "://" not in source.storage:
        paths.append(Path(source.storage))
    absolute = [str(p) for p in paths if Path(p).is_absolute()]
    if absolute:
        raise S2SError(f"--records: {absolute[0]} is absolute; name paths as they are inside the archive")
