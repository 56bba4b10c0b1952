"""A saved W&B workspace per study (W&B's `wandb-workspaces` library): the study's runs (its W&B group),
grouped by its first scientific axis, and one section per axis with validation perplexity, the task's
validation curve (mean over the seeds with a stderr band) and the test metric grouped by that axis,
then the sample translations and the score-by-length tables each run logs.

`s2s report ... --wandb-workspace ENTITY/PROJECT` writes the view's specification as JSON into the
report folder (OUT/wandb_workspace.json) and, when W&B is online, creates it; offline (no network,
WANDB_MODE=offline) `s2s wandb-workspace OUT/wandb_workspace.json` creates it later, as `wandb sync`
uploads offline runs. Grouping keys are dotted config keys (`data.reverse_source`), which W&B reads as
a path into the nested config each run logs (wandb_logging: the resolved config as nested dicts).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .. import metrics as M
from ..errors import S2SError
from ..records import atomic_write_text
from .labels import axis_name, metric_label
from .load import ReportData

WORKSPACE_FILE = "wandb_workspace.json"


def _libraries():
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError:
        raise S2SError("--wandb-workspace needs wandb-workspaces: pip install -e '.[dashboard]'") from None
    return ws, wr


def build_workspace(data: ReportData, study: str, entity: str, project: str):
    """The workspace (wandb_workspaces.workspaces.Workspace) of study `study`'s runs."""
    ws, wr = _libraries()
    axes = list(data.varying) or list(data.axes)
    sections = []
    for i, axis in enumerate(axes):
        grouped = {"groupby": wr.Config(axis), "groupby_aggfunc": "mean", "groupby_rangefunc": "stderr"}
        panels = [
            wr.LinePlot(title="Validation perplexity", x="epoch", y=[M.VAL_PPL], log_y=True, **grouped),
            wr.LinePlot(title=metric_label(data.spec.curve), x="epoch", y=[data.spec.curve], **grouped),
            wr.BarPlot(
                title=f"Test {metric_label(data.spec.primary)}", metrics=[data.spec.primary], **grouped
            ),
        ]
        sections.append(ws.Section(name=f"By {axis_name(axis)}", panels=panels, is_open=i == 0))
    tables = [wr.WeavePanelSummaryTable(table_name=name) for name in ("val/samples", "test/by_length")]
    sections.append(ws.Section(name="Sample translations and scores by length", panels=tables))
    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"s2s study {study}",
        sections=sections,
        runset_settings=ws.RunsetSettings(
            filters=[ws.Metric("Group") == study], groupby=[ws.Config(axes[0])] if axes else []
        ),
    )


def to_json(workspace) -> str:
    return json.dumps(
        json.loads(workspace._to_model().model_dump_json(by_alias=True)), indent=1, sort_keys=True
    )


def from_json(text: str):
    ws, _ = _libraries()
    model_type = type(ws.Workspace(entity="e", project="p")._to_model())
    return ws.Workspace._from_model(model_type.model_validate_json(text))


def write_workspace(data: ReportData, study: str, target: str, out_dir: Path) -> list[str]:
    """OUT/wandb_workspace.json for ENTITY/PROJECT `target`, and the workspace itself when W&B is
    online; lines saying which."""
    entity, _, project = target.partition("/")
    if not entity or not project or "/" in project:
        raise S2SError(f"--wandb-workspace {target}: give ENTITY/PROJECT")
    path = Path(out_dir) / WORKSPACE_FILE
    atomic_write_text(path, to_json(build_workspace(data, study, entity, project)) + "\n")
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return [f"W&B is offline: the workspace is {path}; create it online with: s2s wandb-workspace {path}"]
    return [f"wrote {path}", save(path)]


def save(path: Path | str) -> str:
    """Create the workspace a JSON file describes, on W&B (needs the network and a login)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise S2SError(f"cannot read {path}: {exc.strerror}") from None
    try:
        workspace = from_json(text)
    except ValueError as exc:
        raise S2SError(
            f"{path} is not a workspace written by s2s report: {str(exc).splitlines()[0]}"
        ) from None
    try:
        workspace.save()
    except Exception as exc:  # network, login or permissions: W&B's own message, on one line
        raise S2SError(
            f"could not save the workspace from {path} on W&B: {str(exc).splitlines()[0]}"
        ) from None
    return f"W&B workspace: {workspace.url}"


def run_save(args: argparse.Namespace) -> int:
    """`s2s wandb-workspace FILE`."""
    print(save(args.file))
    return 0
