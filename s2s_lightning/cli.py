"""The `s2s` command: train, evaluate, translate, sweep, report, dashboard.

Bad input raises S2SError; it is printed as one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from .errors import S2SError


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import arm_name, load_config
    from .train import exit_code, train

    cfg = load_config(args.config, args.overrides)
    run_dir = args.run_dir or Path("runs") / "train" / f"{datetime.now():%Y%m%d-%H%M%S}-{arm_name(cfg)}-s{cfg.seed}"
    record = train(cfg, run_dir, resume=args.resume)
    metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(record["metrics"].items()) if k.startswith("test/"))
    print(f"{record['status']}: {run_dir} {metrics}")
    if record.get("error"):
        print(f"s2s: error: {record['error']}", file=sys.stderr)
    return exit_code(record)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train and evaluate one configuration, writing a run record")
    p.add_argument("--config", help="YAML config file (defaults: the addition task, the book's budget)")
    p.add_argument("--run-dir", type=Path, help="where the run record goes (default runs/train/<time>-<arm>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. model.num_layers=4")
    p.set_defaults(func=_cmd_train)

    for add in _optional_parsers():
        add(sub)
    return parser


def _optional_parsers():
    """Sub-commands from the other modules (evaluation, sweeps, reports)."""
    from .commands import PARSERS

    return PARSERS


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
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless debugging
        if os.environ.get("S2S_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"s2s: error: {type(exc).__name__}: {first} (set S2S_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
