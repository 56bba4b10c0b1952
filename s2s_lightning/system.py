"""The Lightning system: a LightningModule that takes the plain `Seq2Seq` and adds training.

Loss is masked cross-entropy (pad ignored); perplexity is exp(sum NLL / target tokens), summed across
ranks before dividing, because perplexities do not average. Validation also decodes greedily for the
task metric (exact match for addition, BLEU for translation), scored by a callable the caller builds
(evaluation.HypothesisScorer), so this module knows nothing of the data or of sacreBLEU.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from . import metrics as M
from .config import Config
from .data import Batch
from .errors import S2SError
from .model import Seq2Seq, deterministic_policy, fused_optimizer, lstm_dtype
from .search import greedy
from .text import PAD_ID

# Lightning advises `sync_dist=True` once per metric under DDP; these epoch metrics are sums already
# reduced across ranks (`_reduce`). Set here, not only around `fit`: `ddp_spawn` ranks are new processes
# that import this module and nothing of the parent's warning filters.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")

# score(stage, {sentence index: hypothesis ids}) -> task metrics named `{stage}/...`
HypothesisScorer = Callable[[str, dict[int, list[int]]], dict[str, float]]
STAGES = ("train", "val", "test")
DIVERGENCE_CHECK_EVERY = 50  # steps between host-side checks of the training loss


class DivergenceError(S2SError):
    """The training loss became NaN or infinite."""


def teacher_forcing_at(cfg: Config, epoch: int) -> float:
    """The scheduled-sampling ratio for `epoch` (0-based)."""
    t = cfg.train
    start, floor = t.teacher_forcing_ratio, t.teacher_forcing_min
    if t.teacher_forcing_schedule == "constant":
        return start
    if t.teacher_forcing_schedule == "linear":
        frac = epoch / max(t.max_epochs - 1, 1)
        return start - (start - floor) * frac
    k = t.teacher_forcing_k  # inverse sigmoid (Bengio et al. 2015): k / (k + exp(epoch / k))
    return floor + (start - floor) * k / (k + math.exp(epoch / k))


def lr_factor(cfg: Config, epoch_float: float) -> float:
    """The paper's recipe: after `lr_decay_start_epoch`, multiply by `lr_decay_factor` every
    `lr_decay_every` epochs (halving every half epoch after 5 epochs)."""
    t = cfg.train
    if t.lr_decay_start_epoch is None or epoch_float < t.lr_decay_start_epoch:
        return 1.0
    return t.lr_decay_factor ** (int((epoch_float - t.lr_decay_start_epoch) / t.lr_decay_every) + 1)


def masked_nll(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed NLL over non-pad targets, their count, and how many argmaxes were right."""
    flat = logits.reshape(-1, logits.size(-1))  # [B*T, V]
    gold = target.reshape(-1)  # [B*T]
    nll = F.cross_entropy(flat, gold, ignore_index=PAD_ID, reduction="sum")
    mask = gold != PAD_ID
    correct = ((flat.argmax(-1) == gold) & mask).sum()
    return nll, mask.sum(), correct


def batch_nll(model: Seq2Seq, batch: Batch, ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL and right argmaxes over the batch's real target positions: the output layer and the
    loss run only there (a third of Multi30k's target slots are padding). The count of those positions
    is `batch.num_tokens`, known on the host. Equals masked_nll over the full logits."""
    logits = model(
        batch.src, batch.src_len, batch.tgt_in, ratio, positions=batch.tgt_pos, uniform=batch.uniform
    )
    gold = batch.tgt_out.reshape(-1).index_select(0, batch.tgt_pos)  # [N]
    nll = F.cross_entropy(logits.float(), gold, reduction="sum")
    return nll, (logits.argmax(-1) == gold).sum()


class Seq2SeqSystem(pl.LightningModule):
    def __init__(self, cfg: Config, model: Seq2Seq, score_hyps: HypothesisScorer | None = None):
        super().__init__()
        self.cfg, self.model, self.score_hyps = cfg, model, score_hyps
        self.epoch_metrics: dict[str, float] = {}  # the last validation epoch's row of history.csv
        # Per stage, sums rather than means, so they combine across batches and ranks: [nll, correct] on
        # the device (never read inside a step) and the target tokens, counted on the host.
        self.sums: dict[str, torch.Tensor] = {}
        self.tokens: dict[str, int] = {}
        self.hyps: dict[str, dict[int, list[int]]] = {}  # per stage: sentence index -> greedy hypothesis ids
        self._pending_loss: tuple | None = None  # a step's loss on its way to the host (_send_loss_home)
        for stage in STAGES:
            self._reset(stage)

    def _reset(self, stage: str) -> None:
        # Made where the steps run: a CPU tensor moved there in a step would be a blocking copy.
        self.sums[stage] = torch.zeros(2, dtype=torch.float64, device=self.device)
        self.tokens[stage] = 0
        self.hyps[stage] = {}
        now = time.perf_counter()
        if stage == "train":
            self._train_start = self._val_start = now
        elif stage == "val":
            self._val_start, self._decode_s = now, 0.0

    def decodes_val(self) -> bool:
        """Whether this epoch's validation decodes for the task metric: every eval.val_decode_every
        epochs and always on the last (the BLEU curve's price; perplexity is measured every epoch)."""
        every, epoch = self.cfg.eval.val_decode_every, self.current_epoch
        max_epochs = self.trainer.max_epochs if self.trainer is not None else None
        last = max_epochs is not None and epoch == max_epochs - 1
        return (
            self.cfg.eval.val_task_metric
            and self.score_hyps is not None
            and ((epoch + 1) % every == 0 or last)
        )

    @property
    def teacher_forcing_ratio(self) -> float:
        return teacher_forcing_at(self.cfg, self.current_epoch)

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device.type
        self.model.set_lstm_dtype(lstm_dtype(self.cfg.train.lstm_precision, self.cfg.train.precision, device))

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        ratio = self.teacher_forcing_ratio if stage == "train" else 1.0  # val/test: always forced
        nll, correct = batch_nll(self.model, batch, ratio)
        tokens = batch.num_tokens
        loss = nll / max(tokens, 1)
        step_sums = torch.stack([nll.detach(), correct]).to(torch.float64)
        if self.sums[stage].device != step_sums.device:
            self.sums[stage] = self.sums[stage].to(step_sums.device)
        self.sums[stage] += step_sums  # stays on the device: no host sync per step
        self.tokens[stage] += tokens
        if stage == "train" and self.global_step % DIVERGENCE_CHECK_EVERY == 0:
            self._check_loss()
            self._send_loss_home(loss)
        elif stage == "val" and self.decodes_val():
            start = time.perf_counter()
            out = greedy(
                self.model, batch.src, batch.src_len, self.cfg.eval.max_len_a, self.cfg.eval.max_len_b
            )
            self.hyps[stage].update(zip(batch.index.tolist(), out.tolist()))
            self._decode_s += time.perf_counter() - start
        return loss

    def _send_loss_home(self, loss: torch.Tensor) -> None:
        """Start copying this step's loss to the host without waiting (pinned memory on CUDA); the next
        check reads it, DIVERGENCE_CHECK_EVERY steps later, long after it landed. Reading it now would
        stall the GPU once per check."""
        event = None
        value = loss.detach().float().to("cpu", non_blocking=True)
        if loss.device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
        self._pending_loss = (value, event, self.current_epoch, self.global_step)

    def _check_loss(self) -> None:
        """The divergence check and the train loss of the loggers, from the loss the last check sent
        home: a host value (read through numpy, no device op), once its copy is known to have landed. A
        loss that became NaN stays NaN, so one skipped check only delays the error; every epoch's end
        also checks the summed loss (on_validation_epoch_end)."""
        pending, self._pending_loss = self._pending_loss, None
        if pending is None or (pending[1] is not None and not pending[1].query()):
            return
        value, _, epoch, step = pending
        loss = float(value.numpy())
        if not math.isfinite(loss):
            raise DivergenceError(f"training diverged: loss is {loss} at epoch {epoch}, step {step}")
        for logger in self.loggers:  # straight to them: a value Lightning holds is read every step
            logger.log_metrics({M.TRAIN_LOSS: loss}, step=step)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_start(self) -> None:
        self._reset("train")

    def on_validation_epoch_start(self) -> None:
        self._reset("val")

    def on_test_epoch_start(self) -> None:
        self._reset("test")

    def _reduce(self, stage: str) -> torch.Tensor:
        """[nll, tokens, correct] of `stage`, summed across ranks, on the host (once per epoch)."""
        nll, correct = self.sums[stage].cpu().tolist()
        sums = torch.tensor([nll, float(self.tokens[stage]), correct], dtype=torch.float64)
        if self.trainer.world_size > 1:
            return self.trainer.strategy.reduce(sums.to(self.device), reduce_op="sum").cpu()
        return sums

    def _gather_hyps(self, hyps: dict[int, list[int]]) -> dict[int, list[int]]:
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            parts: list = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(parts, hyps)
            return {k: v for part in parts for k, v in part.items()}
        return hyps

    def _eval_metrics(self, stage: str) -> dict[str, float]:
        nll, tokens, correct = self._reduce(stage).tolist()
        tokens = max(tokens, 1.0)
        out = {
            f"{stage}/loss": nll / tokens,
            f"{stage}/ppl": math.exp(min(nll / tokens, 50.0)),
            f"{stage}/token_acc": correct / tokens,
        }
        hyps = self._gather_hyps(self.hyps[stage])
        if hyps and self.score_hyps is not None:
            out.update(self.score_hyps(stage, hyps))
        return out

    def on_validation_epoch_end(self) -> None:
        out = self._eval_metrics("val")
        self.log_dict(out, prog_bar=True, sync_dist=False)  # already reduced across ranks
        if self.trainer.sanity_checking:
            return
        nll, tokens, _ = self._reduce("train").tolist()
        if not math.isfinite(nll):
            raise DivergenceError(
                f"training diverged: the summed loss of epoch {self.current_epoch} is {nll}"
            )
        train_s = self._val_start - self._train_start  # validation runs after the epoch's training steps
        epoch_s = time.perf_counter() - self._train_start
        row = {
            "epoch": self.current_epoch,
            "step": self.global_step,
            M.TRAIN_LOSS: nll / max(tokens, 1.0),
            **out,
            M.LR: self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else None,
            M.TRAIN_TOKENS_PER_S: tokens / train_s if tokens and train_s > 0 else None,
            M.TEACHER_FORCING: self.teacher_forcing_ratio,
            M.EPOCH_S: epoch_s,
            M.VAL_DECODE_SHARE: self._decode_s / epoch_s if epoch_s > 0 else None,
        }
        self.epoch_metrics = row
        logged = (M.LR, M.TRAIN_TOKENS_PER_S, M.TEACHER_FORCING, M.EPOCH_S, M.VAL_DECODE_SHARE)
        extra = {k: v for k, v in row.items() if k in logged and v is not None}
        self.log_dict(extra, sync_dist=False)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self._eval_metrics("test"), sync_dist=False)

    def configure_optimizers(self):
        t = self.cfg.train
        opt: torch.optim.Optimizer
        if t.optimizer == "sgd":
            opt = torch.optim.SGD(self.model.parameters(), lr=t.lr)
        else:  # fused (auto: on CUDA): one kernel for the update and no host read of the step count
            fused = fused_optimizer(t, self.device.type)
            opt = torch.optim.Adam(self.model.parameters(), lr=t.lr, fused=fused)
        if t.lr_decay_start_epoch is None:
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(self.cfg, step / self.steps_per_epoch())
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """The gradient norm clipped here, not by Lightning's precision plugin, which refuses any clipping
        with a fused optimizer under mixed precision (bf16-mixed then crashed at the first step on CUDA).
        The gradients are true ones here: bf16 and fp32 have no scaler, and 16-mixed unscales before
        this hook unless the optimizer is fused, which config refuses with clipping. No host read."""
        if gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), gradient_clip_val, foreach=True)

    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch on this rank, as the trainer counts them once the data are set up: under
        DDP each rank takes 1/K of the batches, which the loader built before the process group existed
        could not know (the schedule then decayed K times late). Read when the scheduler steps; before the
        data are set up (its first call, at step 0) any count gives epoch 0."""
        n = self.trainer.num_training_batches
        return int(n) if math.isfinite(n) and n > 0 else 1


def numerics(cfg: Config, trainer: pl.Trainer, model: Seq2Seq) -> dict:
    """How a run computed, for its record: ranks, TF32, the dtypes its LSTMs and output layer ran in."""
    device_type = trainer.strategy.root_device.type
    return {
        "world_size": trainer.world_size,
        "threads": torch.get_num_threads(),
        "tf32": device_type == "cuda"
        and torch.get_float32_matmul_precision() != "highest",  # use_tf32 set it
        "precision": str(cfg.train.precision),
        "fused_optimizer": cfg.train.optimizer == "adam" and fused_optimizer(cfg.train, device_type),
        "deterministic": deterministic_policy(cfg.train.deterministic, device_type),
        "ran_in": model.ran_in(),
    }
