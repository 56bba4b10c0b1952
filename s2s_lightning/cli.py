"""The `s2s` command: train, evaluate, translate, sweep, report, dashboard, reproduce.

Every parser lives here; each command's work lives in its module and is imported only when that
command runs (the handlers below), so `s2s --help` loads no library and `s2s train` never loads
pandas, seaborn or optuna (reports and sweeps). Bad input raises S2SError; it is printed as one line
on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from . import __version__
from .errors import S2SError

SWEEP_STORAGE_HELP = (
    "Optuna storage: a journal file path or sqlite:///, postgresql://... URL "
    "(default: RUNS_DIR/optuna/studies.journal)"
)


# --- handlers. Each command's module is imported here, by name, only when that command runs (each is heavy:
# torch, pandas, optuna); every handler takes the parsed arguments and returns the exit code.
HANDLERS: dict[str, tuple[str, str]] = {
    "train": ("train", "run_train"),
    "evaluate": ("inference", "run_evaluate"),
    "translate": ("inference", "run_translate"),
    "bench": ("bench", "run_bench"),
    "report": ("report.build", "run_report"),
    "wandb-workspace": ("report.workspace", "run_save"),
    "sweep": ("sweep.commands", "run_command"),
    "dashboard": ("sweep.commands", "run_dashboard"),
    "reproduce": ("reproduce", "run_reproduce"),
}


def run_handler(args: argparse.Namespace) -> int:
    module, function = HANDLERS[args.command]
    return int(getattr(importlib.import_module(f"{__package__}.{module}"), function)(args) or 0)


def _config(args: argparse.Namespace) -> int:
    """`s2s config`: print the fully resolved config (defaults, --config, overrides)."""
    from .config import load_config

    print(commented_yaml(load_config(args.config, args.overrides)), end="")
    return 0


def commented_yaml(cfg) -> str:
    """The resolved config as YAML that `s2s train --config` reads back, each key with its description."""
    import json  # `s2s config` alone pays for these

    import yaml
    from pydantic import BaseModel

    lines: list[str] = []

    def walk(section: BaseModel, depth: int) -> None:
        values = section.model_dump(mode="json")
        for name, field in type(section).model_fields.items():
            pad, note = "  " * depth, f"  # {field.description}" if field.description else ""
            child = getattr(section, name)
            if isinstance(child, BaseModel):
                lines.append(f"{pad}{name}:{note}")
                walk(child, depth + 1)
            else:
                value = values[name]
                if isinstance(value, list):  # one line, in flow style: JSON is YAML
                    text = f"{name}: {json.dumps(value)}"
                else:
                    text = yaml.safe_dump({name: value}, default_flow_style=False, width=1000).strip()
                lines.append(f"{pad}{text}{note}")

    walk(cfg, 0)
    return "\n".join(lines) + "\n"


# --- parsers
def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train and evaluate one configuration, writing a run record")
    p.add_argument("--config", help="YAML config file (defaults: the addition task, the book's budget)")
    p.add_argument("--run-dir", type=Path, help="where the run record goes (default runs/train/<time>-<arm>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    p.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="KEY",
        help="a config key that is a scientific axis of this run's study, beyond the four paper "
        "axes (recorded with the run so reports tell its arms apart; repeatable)",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. model.num_layers=4"
    )
    p.set_defaults(func=run_handler)


def _config_parser(sub) -> None:
    p = sub.add_parser(
        "config",
        help="print the resolved config as YAML, each key with its description",
        description="Print the config `s2s train` would use (defaults, then --config, then overrides) "
        "as YAML that `s2s train --config` reads back; every key is there with its default and a "
        "one-line description.",
    )
    p.add_argument("--config", help="YAML config file")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. model.num_layers=4"
    )
    p.set_defaults(func=_config)


def _run_dirs_parser(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--beam", type=int, help="beam size (default: the run's eval.beam_size; 1 = greedy)")
    p.add_argument(
        "--checkpoint", default="best", help="best (lowest validation perplexity, default) or last"
    )
    p.add_argument("--batch-size", type=int, help="sentences decoded together (default: eval.batch_size)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:N")
    p.add_argument(
        "--threads", type=int, help="CPU threads (default: $OMP_NUM_THREADS, else half the cores, at most 4)"
    )
    p.add_argument(
        "--as-is",
        action="store_true",
        help="use the checkpoint of a run that is still training as it is now (refused otherwise)",
    )
    return p


def _evaluate_parsers(sub) -> None:
    p = _run_dirs_parser(
        sub,
        "evaluate",
        "score trained runs (several = an ensemble) on a split, no training",
        "Decode a split with the runs' checkpoints (several run directories are an ensemble "
        "averaging log-probabilities) and write metrics.json, analysis.json, the per-sentence "
        "scores and the hyp/ref/src files.",
    )
    p.add_argument(
        "--split",
        default="test",
        help="train, val, test (the run's own splits), or another split of its data folder such as "
        "test_2017_flickr; with --src/--ref, the name of that test set (default: test)",
    )
    p.add_argument(
        "--data-dir", type=Path, help="the folder holding --split's files (default: the run's data folder)"
    )
    p.add_argument(
        "--src", type=Path, metavar="FILE", help="a test set's source sentences, one per line (with --ref)"
    )
    p.add_argument("--ref", type=Path, metavar="FILE", help="its references, line-aligned with --src")
    p.add_argument(
        "--out",
        type=Path,
        help="output folder (default RUN_DIR/eval/{split}_beam{K}; required for an ensemble)",
    )
    p.add_argument(
        "--represent",
        type=Path,
        metavar="PHRASES",
        help="instead of scoring, write RUN_DIR/representations.json: the encoder's final hidden "
        "vector for each line of PHRASES",
    )
    p.set_defaults(func=run_handler)

    p = _run_dirs_parser(
        sub,
        "translate",
        "translate stdin to stdout, one line per line",
        "Read source sentences on stdin, write translations on stdout, one line per line (an "
        "empty line gives an empty line).",
    )
    p.set_defaults(func=run_handler)


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="training and decoding speed of a config (tokens/s, sentences/s, memory)",
        description="Source and target tokens/s, sentences/s, padding share and peak memory for training "
        "(teacher forcing 1.0 and 0.5) and decoding (greedy, beam 12), on CPU or CUDA.",
    )
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--sentences", type=int, default=256, help="validation sentences decoded per variant")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument(
        "--profile", action="store_true", help="also profile training steps: the ops that take the time"
    )
    p.add_argument(
        "--random-batches",
        action="store_true",
        help="also train on random batches (length bucketing's speed-up)",
    )
    p.add_argument(
        "--one-at-a-time",
        type=int,
        metavar="N",
        help="also decode N sentences one at a time (batching's speed-up)",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, as for s2s train")
    p.set_defaults(func=run_handler)


def _report_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="tables, figures and a README from run records",
        description="Write tables (Markdown, LaTeX, CSV), figures (PNG, PDF) and README.md from run records.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="run directories, evaluation directories, or folders searched for record.json",
    )
    src.add_argument(
        "--study", metavar="NAME", help="an Optuna study whose trials carry the user attr run_dir"
    )
    src.add_argument("--wandb", metavar="ENTITY/PROJECT[/GROUP]", help="W&B runs (needs network)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="storage of --study: a journal file path or a database URL such as sqlite:///runs/optuna.db "
        "(default: the sweep's runs/optuna/studies.journal)",
    )
    p.add_argument(
        "-o", "--out", type=Path, required=True, metavar="DIR", help="report folder, e.g. reports/NAME"
    )
    p.add_argument(
        "--records",
        type=Path,
        metavar="FILE",
        help="read --runs / --study inside this archive (a report's records.tar.gz), not the runs folder",
    )
    p.add_argument(
        "--wandb-workspace",
        metavar="ENTITY/PROJECT",
        help="with --study: the study's W&B workspace, as OUT/wandb_workspace.json and, online, on W&B",
    )
    p.add_argument(
        "--save-records",
        action="store_true",
        help="also write OUT/records.tar.gz: the records this report was built from, without checkpoints",
    )
    p.add_argument("--title", help="README title (default: 'Report: NAME')")
    p.add_argument(
        "--metric",
        help="metric of the effects table and the Findings, e.g. test/bleu_tok (default: the primary)",
    )
    p.add_argument(
        "--note",
        type=Path,
        metavar="FILE",
        help="Markdown put under the README's header, e.g. how the runs were made and their wall time",
    )
    p.set_defaults(func=run_handler)


def _sweep_common(p: argparse.ArgumentParser, storage: bool = True) -> None:
    p.add_argument("ablation", help="ablation file, e.g. ablations/addition.yaml")
    p.add_argument("--budget", default="full", help="a budget named in the file (default: full)")
    if storage:
        p.add_argument("--storage", help=SWEEP_STORAGE_HELP)
        p.add_argument("--runs-dir", default="runs", help="where run directories go (default: runs)")


def _workspace_parser(sub) -> None:
    p = sub.add_parser(
        "wandb-workspace",
        help="create on W&B the workspace `s2s report --wandb-workspace` wrote offline (like wandb sync)",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="a report's wandb_workspace.json")
    p.set_defaults(func=run_handler)


def _reproduce_parser(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="the commands that train a run again from its record (commit, diff, config, seed)",
        description="Print the commands that reproduce RUN in a fresh clone: checkout of its commit, "
        "git apply of its git.diff (a run from an edited tree), the install, and s2s train with its "
        "config.yaml; with --run-dir NEW, run them (a temporary checkout, this Python).",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="a run directory written by s2s train")
    p.add_argument("--run-dir", type=Path, metavar="NEW", help="train the reproduction into NEW")
    p.set_defaults(func=run_handler)


def _launch_flags(q: argparse.ArgumentParser) -> None:
    """The workers of `sweep run` and `sweep worker`: how many, and on which GPUs."""
    q.add_argument("--workers", type=int, help="worker processes (default: 1, or one per GPU with --gpus)")
    q.add_argument(
        "--gpus",
        help="GPUs to spread trials over: indices (0,1,2,3) into the GPUs this job was "
        "given (CUDA_VISIBLE_DEVICES), or 'all' of them",
    )
    q.add_argument(
        "--trials-per-gpu",
        type=int,
        default=1,
        metavar="K",
        help="run K trials at once on each GPU of --gpus, each its own process (default 1)",
    )
    q.add_argument(
        "--gpus-per-trial",
        type=int,
        default=1,
        metavar="K",
        help="give each trial K GPUs of --gpus (DDP over them: train.devices=K; default 1)",
    )


def _sweep_parsers(sub) -> None:
    p = sub.add_parser("sweep", help="run an ablation file as an Optuna study, or export it as a W&B sweep")
    actions = p.add_subparsers(dest="sweep_command", required=True, metavar="ACTION")

    r = actions.add_parser("run", help="create or resume the study and run every missing trial")
    w = actions.add_parser("worker", help="join a running study (e.g. from another node) until nothing waits")
    for q in (r, w):
        _sweep_common(q)
        _launch_flags(q)

    r.add_argument(
        "--dry-run", action="store_true", help="list every arm x seed's s2s train command; start nothing"
    )
    w.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for `s2s sweep run` to create the study and enqueue its trials "
        "(workers started beside the coordinator, e.g. in a SLURM array; default: do not wait)",
    )

    s = actions.add_parser("status", help="arms x seeds: done / running / failed, with objective values")
    _sweep_common(s)

    f = actions.add_parser(
        "repair",
        help="drop a journal's partial last record (a crash or a full disk while it was written)",
        description="A journal whose last record was cut short is refused by every command; the partial "
        "record never committed. This drops it, keeping the file as it was in JOURNAL.before-repair.",
    )
    f.add_argument("--storage", help="the journal file (default: RUNS_DIR/optuna/studies.journal)")
    f.add_argument("--runs-dir", default="runs", help="where run directories go (default: runs)")

    x = actions.add_parser("wandb", help="write the scientific grid x seeds as a W&B sweep config")
    _sweep_common(x, storage=False)
    x.add_argument("-o", "--output", help="output file, e.g. sweeps/addition.yaml (default: stdout)")
    p.set_defaults(func=run_handler)

    d = sub.add_parser("dashboard", help="serve optuna-dashboard for the studies on 127.0.0.1")
    d.add_argument("--storage", help="Optuna storage (default: RUNS_DIR/optuna/studies.journal)")
    d.add_argument("--runs-dir", default="runs")
    d.add_argument("--port", type=int, default=8080)
    d.set_defaults(func=run_handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _train_parser,
        _config_parser,
        _evaluate_parsers,
        _bench_parser,
        _report_parser,
        _workspace_parser,
        _sweep_parsers,
        _reproduce_parser,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except S2SError as exc:
        print(f"s2s: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("s2s: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `s2s ... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as exc:
        if os.environ.get("S2S_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"s2s: error: {type(exc).__name__}: {first} (set S2S_DEBUG=1 for the traceback)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
