"""The acceptance run of a GPU node: every number the project needs from a GPU, in one command, offline.

    python -m s2s_lightning.acceptance OUT [--minutes 7] [--trials-per-gpu 4,8] [--dry-run]

Steps, in order of value, each a `python -m s2s_lightning ...` process (no console script needed) with
W&B disabled and its own timeout, under one time budget: a step that no longer fits is skipped, and
OUT/summary.txt (one line per step: status, seconds, its numbers) and OUT/records.tar.gz (the run
records, no checkpoints) are written whatever happens.

1. env: GPU, driver, torch / CUDA / cuDNN versions, TF32 flags, and the dtypes the LSTMs and the output
   layer produce in a bf16-mixed training step under the project's precision policy;
2. tests: the `gpu`-marked tests (a training step under torch.cuda.set_sync_debug_mode("error"));
3. bench-fp32, bench-tf32, bench-bf16: `s2s bench --profile` on the tutorial config (Multi30k de->en,
   embedding 256, hidden 512, 2 layers, batch 128, data.min_freq=2): target tokens/s, seconds per
   epoch, peak memory, greedy and beam-12 sentences/s, the top operator;
4. ppl-fp32, ppl-bf16: 2 epochs of one seed each; the validation perplexity gap;
5. packed-K: K trials per GPU on a fixed in-process workload (each process loads its data and model,
   then all start together: process start-up is not timed): aggregate target tokens/s against K = 1;
6. ddp: a 1-GPU DDP smoke run;
7. study: with what time remains, the paper's whole design (`ablations/paper_multi30k.yaml --budget
   gpu`, K trials per GPU), resumable: run the command again to continue it.

--dry-run runs every step on the CPU at tiny sizes (about 2 minutes on 2 cores); the test suite runs it,
so the script cannot rot.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .records import COMPLETED, RunKey

REPO = Path(__file__).resolve().parents[1]
ABLATION = REPO / "ablations" / "paper_multi30k.yaml"
TUTORIAL = {
    "data.name": "multi30k",
    "data.min_freq": 2,
    "model.embedding_dim": 256,
    "model.hidden_dim": 512,
    "model.num_layers": 2,
    "data.batch_size": 128,
}
TINY = {
    "data.max_train_sentences": 300,
    "data.max_eval_sentences": 24,
    "data.min_freq": 1,
    "model.embedding_dim": 16,
    "model.hidden_dim": 16,
    "eval.max_len_a": 0.5,
    "eval.max_len_b": 5,
}
MULTI30K_PAIRS = 29_000  # training pairs: seconds per epoch = pairs / sentences per second


@dataclass
class Step:
    name: str
    timeout: float  # seconds it may take at most
    status: str = "skipped"
    seconds: float = 0.0
    numbers: dict = field(default_factory=dict)
    note: str = ""

    def line(self) -> str:
        text = "; ".join(
            filter(None, [", ".join(f"{k} {_fmt(v)}" for k, v in self.numbers.items()), self.note])
        )
        return f"{self.name:<12} {self.status:<8} {self.seconds:>6.0f} s  {text}"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


class Acceptance:
    def __init__(self, out: Path, minutes: float, ks: list[int], dry_run: bool):
        self.out, self.dry, self.ks = out, dry_run, ks
        self.deadline = time.monotonic() + minutes * 60
        self.steps: list[Step] = []
        self.device = "cpu" if dry_run else "cuda"
        self.accelerator = "cpu" if dry_run else "gpu"
        self.env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    # --- running steps ------------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, name: str, timeout: float, fn, *, at_least: float | None = None) -> Step:
        """Run fn(step) if its timeout (or `at_least` of it) still fits in the budget; never raises."""
        s = Step(name, timeout)
        self.steps.append(s)
        room = self.left()
        if room < (at_least if at_least is not None else timeout):
            s.note = f"skipped: {room:.0f} s of the budget left, needs {at_least or timeout:.0f}"
            self.write_summary()
            return s
        s.timeout = min(timeout, room)
        start = time.monotonic()
        try:
            fn(s)
            if s.status == "skipped":
                s.status = "ok"
        except subprocess.TimeoutExpired:
            s.status, s.note = "timeout", f"stopped after {s.timeout:.0f} s"
        except Exception as exc:  # a step's failure is its line in the summary, not the end of the run
            s.status, s.note = (
                "failed",
                f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1]}",
            )
        s.seconds = time.monotonic() - start
        print(s.line(), flush=True)
        self.write_summary()
        return s

    def run(self, args: list[str], step: Step, log: str) -> subprocess.CompletedProcess:
        """`python -m s2s_lightning ARGS` (or `python ARGS` when ARGS starts with -m), logged to OUT/LOG."""
        cmd = [sys.executable, *(args if args[0] == "-m" else ["-m", "s2s_lightning", *args])]
        with open(self.out / log, "w") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            proc = subprocess.run(
                cmd,
                stdout=f,
                stderr=subprocess.STDOUT,
                env=self.env,
                timeout=step.timeout,
                cwd=REPO,
                text=True,
            )
        if proc.returncode != 0:
            tail = (self.out / log).read_text().strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"exit {proc.returncode} ({log}): {tail[0]}")
        return proc

    def overrides(self, extra: dict | None = None) -> list[str]:
        cfg = {**TUTORIAL, **(TINY if self.dry else {}), **(extra or {})}
        return [f"{k}={v}" for k, v in cfg.items()]

    # --- the steps ----------------------------------------------------------------------------------
    def env_step(self, s: Step) -> None:
        info = environment(self.device)
        (self.out / "environment.json").write_text(json.dumps(info, indent=2))
        s.numbers = {
            k: info[k] for k in ("gpu", "torch", "cuda", "cudnn", "tf32_matmul") if info.get(k) is not None
        }
        s.numbers.update({f"bf16 {k}": v for k, v in info["bf16_ran_in"].items()})

    def tests_step(self, s: Step) -> None:
        if importlib.util.find_spec("pytest") is None:
            s.status = "missing"
            s.note = f"pytest is not installed for {sys.executable}: pip install --no-index wheelhouse/*.whl"
            return
        args = ["-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(REPO / "tests")]
        proc = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=self.env, timeout=s.timeout, cwd=REPO
        )
        (self.out / "tests.log").write_text(proc.stdout + proc.stderr)
        last = (proc.stdout.strip().splitlines() or [""])[-1].strip("= ")
        s.numbers = {"pytest": last}
        if proc.returncode not in (0, 5):  # 5: nothing collected
            raise RuntimeError(f"gpu tests failed: {last}")

    def bench_step(self, s: Step, precision: str, tf32: bool) -> None:
        sizes = ["--steps", "2", "--warmup", "1", "--sentences", "16"]
        if not self.dry:
            sizes = ["--steps", "50", "--warmup", "10", "--sentences", "1000"]
        args = [
            "bench",
            "--device",
            self.device,
            "--json",
            "--profile",
            *sizes,
            *self.overrides({"train.precision": precision, "train.tf32": tf32}),
        ]
        self.run(args, s, f"{s.name}.log")
        text = (self.out / f"{s.name}.log").read_text()
        result = json.loads(text[text.index("{") :])
        (self.out / f"{s.name}.json").write_text(json.dumps(result, indent=2))
        train, decode = result["train"]["tf1"], result["decode"]
        s.numbers = {
            "tok/s": train["tgt_tokens_per_s"],
            "s/epoch": MULTI30K_PAIRS / train["sentences_per_s"],
            "peak MiB": result["peak_memory_mb"],
            "greedy sent/s": decode["greedy"]["sentences_per_s"],
            "beam12 sent/s": decode["beam12"]["sentences_per_s"],
            "top op": f"{result['profile'][0]['op']} ({result['profile'][0]['share']:.0%})",
        }

    def ppl_step(self, s: Step, precision: str) -> None:
        run_dir = self.out / "runs" / f"tutorial-{precision}"
        shutil.rmtree(run_dir, ignore_errors=True)
        extra = {
            "train.precision": precision,
            "train.max_epochs": 1 if self.dry else 2,
            "seed": 0,
            "train.accelerator": self.accelerator,
            "tracking.wandb": "disabled",
            "train.progress_bar": False,
            "eval.val_task_metric": False,
        }
        self.run(["train", "--run-dir", str(run_dir), *self.overrides(extra)], s, f"{s.name}.log")
        record = json.loads((run_dir / "record.json").read_text())
        s.numbers = {"val ppl": record[RunKey.METRICS]["val/ppl"], "s": record[RunKey.WALL_TIME_S]}
        s.numbers.update({k: v for k, v in record[RunKey.NUMERICS]["ran_in"].items()})

    def packed_step(self, s: Step, k: int) -> None:
        steps = "3" if self.dry else "60"
        args = [
            "-m",
            "s2s_lightning.acceptance",
            "--packed",
            str(k),
            "--device",
            self.device,
            "--steps",
            steps,
            *(arg for override in self.overrides() for arg in ("--set", override)),
        ]
        self.run(args, s, f"{s.name}.log")
        text = (self.out / f"{s.name}.log").read_text()
        result = json.loads(text[text.index("{") :])
        s.numbers = {
            "task": result["task"],
            "tok/step": result["tokens_per_step"],
            "tok/s": result["tokens_per_s"],
            "per trial": result["tokens_per_s"] / k,
        }
        base = "packed-1" + ("-mps" if s.name.endswith("-mps") else "")
        one = next((x for x in self.steps if x.name == base and x.status == "ok"), None)
        if one is not None and k > 1:
            s.numbers["x K=1"] = result["tokens_per_s"] / one.numbers["tok/s"]

    def ddp_step(self, s: Step) -> None:
        run_dir = self.out / "runs" / "ddp-smoke"
        shutil.rmtree(run_dir, ignore_errors=True)
        extra = {
            "train.devices": 1,
            "train.strategy": "ddp",
            "train.accelerator": self.accelerator,
            "train.max_epochs": 1,
            "data.max_train_sentences": 300 if self.dry else 2000,
            "tracking.wandb": "disabled",
            "train.progress_bar": False,
        }
        self.run(["train", "--run-dir", str(run_dir), *self.overrides(extra)], s, f"{s.name}.log")
        record = json.loads((run_dir / "record.json").read_text())
        s.numbers = {
            "ranks": record[RunKey.NUMERICS]["world_size"],
            "test ppl": record[RunKey.METRICS]["test/ppl"],
        }

    def study_step(self, s: Step, k: int) -> None:
        ablation = ABLATION if not self.dry else self.dry_ablation()
        budget = "gpu" if not self.dry else "dry"
        gpus = ["--gpus", "all", "--trials-per-gpu", str(k)] if not self.dry else ["--workers", "2"]
        runs = str(self.out / "runs" / "study")
        args = ["sweep", "run", str(ablation), "--budget", budget, "--runs-dir", runs, *gpus]
        try:
            self.run(args, s, "study.log")
        finally:
            records = [json.loads(r.read_text()) for r in (self.out / "runs" / "study").rglob("record.json")]
            done = [r for r in records if r.get(RunKey.STATUS) == COMPLETED]
            s.numbers = {"runs completed": len(done), "runs started": len(records)}
            seconds = sorted(r[RunKey.WALL_TIME_S] for r in done if r.get(RunKey.WALL_TIME_S) is not None)
            if seconds:  # the `gpu` budget's estimate is corrected from these
                s.numbers["median s/run"] = seconds[len(seconds) // 2]

    def dry_ablation(self) -> Path:
        """The study's design at tiny sizes: 2 arms of the paper's file, one seed, a `dry` budget."""
        spec = yaml.safe_load(ABLATION.read_text())
        spec["budgets"] = {
            "dry": {
                "seeds": [0],
                "overrides": {**TINY, "train.max_epochs": 1, "eval.beam_size": 1},
                "scientific": {
                    "model.num_layers": [1],
                    "model.peeky": [False],
                    "train.teacher_forcing_ratio": [1.0],
                },
            }
        }
        path = self.out / "dry_ablation.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    # --- the whole ----------------------------------------------------------------------------------
    def all(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        budget_s = self.left()
        mps = shutil.which("nvidia-cuda-mps-control") if not self.dry else None
        packs = [1, *self.ks]
        # Each step's timeout is a share of the budget; the shares add up to 85% of it (the study takes
        # what is left, at least 10%), so no step's timeout can starve the ones after it.
        fixed = {"env": 3, "tests": 10, "bench": 7, "ppl": 7, "ddp": 5}  # % of the budget
        pack_share = (
            85 - fixed["env"] - fixed["tests"] - 3 * fixed["bench"] - 2 * fixed["ppl"] - fixed["ddp"]
        ) / (len(packs) * (2 if mps else 1))
        t = {name: budget_s * share / 100 for name, share in {**fixed, "packed": pack_share}.items()}
        self.step("env", t["env"], self.env_step)
        self.step("tests", t["tests"], self.tests_step)
        self.step("bench-fp32", t["bench"], lambda s: self.bench_step(s, "32-true", False))
        self.step("bench-tf32", t["bench"], lambda s: self.bench_step(s, "32-true", True))
        self.step("bench-bf16", t["bench"], lambda s: self.bench_step(s, "bf16-mixed", True))
        for precision in ("32-true", "bf16-mixed"):
            self.step(f"ppl-{precision.split('-')[0]}", t["ppl"], lambda s, p=precision: self.ppl_step(s, p))
        ppl = {
            x.name: float(x.numbers["val ppl"])
            for x in self.steps
            if x.name.startswith("ppl-") and x.status == "ok"
        }
        if len(ppl) == 2:
            self.steps[-1].numbers["gap vs fp32"] = f"{ppl['ppl-bf16'] / ppl['ppl-32'] - 1:+.2%}"
        for k in packs:
            self.step(f"packed-{k}", t["packed"], lambda s, k=k: self.packed_step(s, k))
        if mps:  # the same with CUDA MPS: K processes share the GPU's SMs instead of time-slicing it
            with mps_daemon(self.out, self.env):
                for k in packs:
                    self.step(f"packed-{k}-mps", t["packed"], lambda s, k=k: self.packed_step(s, k))
        self.step("ddp", t["ddp"], self.ddp_step)
        k = max(self.ks) if self.ks else 1
        at_least = budget_s * 0.10
        self.step("study", max(self.left() - 15, 0), lambda s: self.study_step(s, k), at_least=at_least)
        self.write_summary(final=True, budget_s=budget_s)
        self.write_tarball()
        print(f"wrote {self.out / 'summary.txt'} and {self.out / 'records.tar.gz'}")
        return 0 if all(s.status in ("ok", "skipped", "missing") for s in self.steps) else 1

    def write_summary(self, final: bool = False, budget_s: float | None = None) -> None:
        where = "CPU (dry run)" if self.dry else "CUDA"
        head = f"# acceptance run on {where}, {time.strftime('%Y-%m-%d %H:%M')}"
        lines = [head, *(s.line() for s in self.steps)]
        if final and budget_s is not None:
            lines.append(f"# total {budget_s - self.left():.0f} s of a {budget_s:.0f} s budget")
        tmp = self.out / "summary.txt.part"
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.out / "summary.txt")

    def write_tarball(self) -> None:
        """The run records (configs, records, histories, test outputs, logs), no checkpoints."""
        path = self.out / "records.tar.gz"
        with tarfile.open(path.with_suffix(".part"), "w:gz") as tar:
            for p in sorted(self.out.rglob("*")):
                if (
                    p.is_file()
                    and p.suffix not in (".ckpt", ".part")
                    and "wandb" not in p.parts
                    and p != path
                ):
                    tar.add(p, arcname=str(p.relative_to(self.out)))
        os.replace(path.with_suffix(".part"), path)


@contextlib.contextmanager
def mps_daemon(out: Path, env: dict):
    """CUDA MPS for the block (its pipes and logs under OUT/mps), stopped after. The sweep itself never
    starts MPS: start it on the node before `s2s sweep run` when these steps show it pays."""
    folder = out / "mps"
    folder.mkdir(exist_ok=True)
    mps_env = {**env, "CUDA_MPS_PIPE_DIRECTORY": str(folder), "CUDA_MPS_LOG_DIRECTORY": str(folder)}
    subprocess.run(["nvidia-cuda-mps-control", "-d"], env=mps_env, check=True, timeout=30)
    env.update(CUDA_MPS_PIPE_DIRECTORY=str(folder), CUDA_MPS_LOG_DIRECTORY=str(folder))
    try:
        yield
    finally:
        for key in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"):
            env.pop(key, None)
        subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, env=mps_env, timeout=30)


def environment(device: str) -> dict:
    """What the node is and how it computes: versions, TF32 flags, and the dtypes one bf16-mixed forward
    pass produces under the project's precision policy (LSTMs fp32 on CUDA, output layer bf16)."""
    import torch

    from .config import build_config
    from .data import collate
    from .model import Seq2Seq, lstm_dtype, use_tf32

    info: dict = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
    }
    if shutil.which("nvidia-smi"):
        q = "--query-gpu=name,driver_version,memory.total"
        smi = subprocess.run(["nvidia-smi", q, "--format=csv,noheader"], capture_output=True, text=True)
        info["nvidia_smi"] = smi.stdout.strip()
    use_tf32(True, device)
    info["tf32_matmul"] = torch.get_float32_matmul_precision()
    info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    cfg = build_config({}, {"model.peeky": True})
    model = Seq2Seq(20, 20, cfg.model).to(device)
    model.set_lstm_dtype(lstm_dtype("auto", "bf16-mixed", device))
    b = collate([(0, [5, 6, 7], [8, 9]), (1, [5, 6], [8, 9, 10])]).to(device)
    try:
        with torch.autocast(device, dtype=torch.bfloat16):
            model(b.src, b.src_len, b.tgt_in)
        info["bf16_ran_in"] = model.ran_in()
    except RuntimeError as exc:
        info["bf16_ran_in"] = {"error": str(exc).splitlines()[0]}
    return info


# --- K trials per GPU on a fixed workload ---------------------------------------------------------------
def _packed_worker(overrides: list[str], device: str, steps: int, barrier, results) -> None:
    import torch

    from .bench import measure
    from .config import load_config
    from .data import DataBundle
    from .metrics import task_of

    torch.set_num_threads(1)
    cfg = load_config(None, overrides)
    bundle = DataBundle(cfg)  # loading is not timed: every process waits at the barrier first
    r = measure(cfg, bundle, True, steps, 3, torch.device(device), ready=barrier.wait)
    results.put((r["tokens"], task_of(cfg.data.name)))  # the target tokens it trained on, and its task


def packed(k: int, overrides: list[str], device: str, steps: int) -> dict:
    """Aggregate target tokens/s of K processes training at once on one device, timed from a common start."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(k + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_packed_worker, args=(overrides, device, steps, barrier, results))
        for _ in range(k)
    ]
    for p in procs:
        p.start()
    barrier.wait()  # every process has its data and model and has run its warm-up steps
    start = time.perf_counter()
    done = [results.get() for _ in procs]
    seconds = time.perf_counter() - start
    for p in procs:
        p.join()
    tokens = sum(t for t, _ in done)
    return {
        "k": k,
        "task": done[0][1],
        "tokens_per_step": tokens / (k * steps),
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, help="folder for summary.txt, records.tar.gz and logs")
    p.add_argument("--minutes", type=float, default=7.0, help="time budget of the whole run (default 7)")
    p.add_argument("--trials-per-gpu", default="4,8", help="the K values of the packed steps (default 4,8)")
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes")
    p.add_argument("--packed", type=int, help=argparse.SUPPRESS)  # one packed step, in its own process
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=60, help=argparse.SUPPRESS)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.packed:  # its config as --set KEY=VALUE: a positional list would lose its first item to OUT
        print(json.dumps(packed(args.packed, args.set, args.device, args.steps)))
        return 0
    if args.out is None:
        p.error("OUT is required")
    if not args.dry_run and not os.environ.get("S2S_MULTI30K_DIR"):
        print(
            "acceptance: set S2S_MULTI30K_DIR to a Multi30k folder (the node has no internet)",
            file=sys.stderr,
        )
        return 2
    ks = [int(k) for k in args.trials_per_gpu.split(",") if k.strip()]
    if args.dry_run and args.trials_per_gpu == p.get_default("trials_per_gpu"):
        ks = [2]  # two CPU processes show the step works; more only crowd 2 cores
    return Acceptance(args.out, args.minutes, ks, args.dry_run).all()


if __name__ == "__main__":
    raise SystemExit(main())
