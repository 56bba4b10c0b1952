"""The Optuna dashboard opens on the report: after `s2s report --study NAME`, study NAME's note (the
dashboard's note panel) is the report's Findings, and its figures and report.html are artifacts of the
study, in Optuna's file artifact store beside the storage, which `s2s dashboard` serves.

A report made again uploads only the files whose content changed (the study remembers each file's
sha256 in a user attribute); the dashboard lists every upload, newest first. Without optuna-dashboard
(an optional extra) the note is skipped with a line that says so; the artifacts need only Optuna.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import optuna

from ..sweep.storage import REPORT_ARTIFACTS, artifact_dir, open_storage


def findings_of(readme: str) -> list[str]:
    """The lines of a report README's Findings section."""
    section = readme.split("## Findings\n\n", 1)[1] if "## Findings\n\n" in readme else ""
    return section.split("\n\n", 1)[0].splitlines()


def publish(name: str, storage: str, out_dir: Path) -> list[str]:
    """Put the report's Findings and files into study `name`; returns lines saying what was done."""
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    study = optuna.load_study(study_name=name, storage=open_storage(storage, create=False))
    lines = []
    try:
        from optuna_dashboard import save_note
    except ImportError:
        lines.append("optuna-dashboard is not installed: the study's note was not written")
    else:
        readme = (out_dir / "README.md").read_text(encoding="utf-8")
        title = readme.splitlines()[0].lstrip("# ")
        body = [f"## {title}", "", *findings_of(readme), "", f"The report: {out_dir}/README.md, report.html"]
        save_note(study, "\n".join(body))
        lines.append(f"study '{name}': note set to the report's Findings")
    where = artifact_dir(storage)
    where.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(where))
    uploaded = dict(study.user_attrs.get(REPORT_ARTIFACTS) or {})
    files = [out_dir / "report.html", *sorted((out_dir / "figures").glob("*.png"))]
    fresh = 0
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if uploaded.get(path.name, [None])[0] == digest:
            continue
        artifact = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
        uploaded[path.name] = [digest, artifact]
        fresh += 1
    study.set_user_attr(REPORT_ARTIFACTS, json.loads(json.dumps(uploaded)))
    lines.append(f"study '{name}': {fresh} of {len(files)} report files uploaded as artifacts to {where}")
    return lines
