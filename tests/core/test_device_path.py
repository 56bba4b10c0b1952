"""The CUDA path, right by construction and checked on a CPU: the LSTMs' precision, device reads in a
step, batches, the output layer on real positions only, DDP's schedule and shards, cluster placement."""

from __future__ import annotations

import contextlib
import itertools

import pytest
import pytorch_lightning as pl
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from s2s_lightning import model as model_module
from s2s_lightning.config import build_config
from s2s_lightning.data import (
    Batch,
    BucketBatchSampler,
    DataBundle,
    EvalBatchSampler,
    collate,
    loader_settings,
)
from s2s_lightning.errors import S2SError
from s2s_lightning.model import (
    Seq2Seq,
    check_precision,
    decode_batch_size,
    deterministic_policy,
    fused_optimizer,
    lstm_dtype,
    run_lstm,
    use_deterministic,
    use_tf32,
)
from s2s_lightning.search import beam_search, greedy
from s2s_lightning.sweep.launch import parse_gpus
from s2s_lightning.system import Seq2SeqSystem, batch_nll, masked_nll
from s2s_lightning.text import EOS_ID, PAD_ID, SOS_ID
from s2s_lightning.train import train

# Ops that read a tensor's value on the host: on CUDA each waits for the GPU (a sync).
READS = ("aten._local_scalar_dense", "aten.nonzero", "aten.is_nonzero")


class DeviceReads(TorchDispatchMode):
    """Counts the ops that would read a device value; `paused()` for code that reads host tensors by
    design."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.counting = True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.counting and str(func).startswith(READS):
            self.reads.append(str(func))
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def paused(self):
        self.counting = False
        try:
            yield
        finally:
            self.counting = True


def bf16_lstm_on_cpu() -> bool:
    try:
        check_precision("bf16-mixed", "cpu")
    except S2SError:
        return False
    return True


def tiny_model(peeky=False, layers=2, vocab=13, seed=0) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = build_config(
        {},
        {"model.hidden_dim": 8, "model.embedding_dim": 6, "model.num_layers": layers, "model.peeky": peeky},
    ).model
    return Seq2Seq(vocab, vocab, cfg)


def random_batch(lengths, tgt_lengths, vocab=13, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    items = [
        (
            i,
            torch.randint(4, vocab, (s,), generator=g).tolist(),
            torch.randint(4, vocab, (t,), generator=g).tolist(),
        )
        for i, (s, t) in enumerate(zip(lengths, tgt_lengths))
    ]
    return collate(items)


# --- 1. the LSTMs' precision is a policy, not an accident of autocast ---------------------------------
def test_lstm_precision_policy_never_leaves_cuda_lstms_to_autocast():
    """cuDNN's autocast wrapper runs RNNs in fp16 whatever dtype autocast was given; under bf16-mixed on
    CUDA, auto keeps them in fp32 and bf16 casts them explicitly."""
    f32, bf16 = torch.float32, torch.bfloat16
    assert lstm_dtype("auto", "bf16-mixed", "cuda") == f32
    assert lstm_dtype("auto", "16-mixed", "cuda") == f32
    assert lstm_dtype("bf16", "bf16-mixed", "cuda") == bf16
    assert lstm_dtype("fp32", "bf16-mixed", "cpu") == f32
    assert lstm_dtype("bf16", "32-true", "cuda") == f32  # full precision: everything fp32
    assert lstm_dtype("auto", "bf16-mixed", "cpu") == model_module.CPU_BF16_LSTM_DTYPE


@pytest.mark.skipif(not bf16_lstm_on_cpu(), reason="this CPU has no bf16 LSTM kernel")
def test_fp32_lstms_under_bf16_autocast_and_the_output_layer_in_bf16():
    """Left to autocast, a CPU runs a packed LSTM in fp32 and an unpacked one in bf16 (two overloads);
    the policy makes both LSTMs one dtype, packed or not."""
    model = tiny_model(peeky=True)
    for lengths in ([5, 3, 4], [4, 4, 4]):  # packed, then not
        b = random_batch(lengths, [2, 4, 3])
        for dtype, name in ((torch.bfloat16, "bfloat16"), (torch.float32, "float32")):
            model.set_lstm_dtype(dtype)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(b.src, b.src_len, b.tgt_in, uniform=b.uniform)
            assert model.ran_in() == {"encoder_lstm": name, "decoder_lstm": name, "output_layer": "bfloat16"}
            assert logits.dtype == torch.bfloat16  # the embeddings, output layer and loss stay under autocast


def test_an_explicit_bf16_lstm_casts_its_weights_and_bypasses_autocast():
    """The path CUDA takes for train.lstm_precision=bf16 (autocast's fp16 RNN wrapper bypassed), here
    under an fp16 autocast, which would otherwise choose fp16; outside autocast the LSTM runs as its
    weights are (evaluation after a mixed-precision training)."""
    if not bf16_lstm_on_cpu():
        pytest.skip("this CPU has no bf16 LSTM kernel")
    lstm = torch.nn.LSTM(4, 5, 2, batch_first=True)
    x = torch.randn(3, 6, 4)
    with torch.autocast("cpu", dtype=torch.float16):
        y, (h, c) = run_lstm(lstm, x, None, torch.bfloat16)
    assert y.dtype == h.dtype == c.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), lstm(x)[0], atol=0.05, rtol=0.05)
    assert lstm.weight_ih_l0.dtype == torch.float32  # the parameters themselves stay fp32
    assert run_lstm(lstm, x, None, torch.bfloat16)[0].dtype == torch.float32


def test_a_bf16_mixed_cpu_run_trains_and_then_evaluates_in_fp32(tmp_path, tiny_cfg):
    if not bf16_lstm_on_cpu():
        pytest.skip("this CPU has no bf16 LSTM kernel")
    from s2s_lightning.train import train

    record = train(tiny_cfg(**{"train.precision": "bf16-mixed", "model.peeky": True}), tmp_path / "run")
    assert record["status"] == "completed", record["error"]
    lstm = "bfloat16" if model_module.CPU_BF16_LSTM_DTYPE == torch.bfloat16 else "float32"
    ran = {"encoder_lstm": lstm, "decoder_lstm": lstm, "output_layer": "bfloat16"}
    assert record["numerics"]["ran_in"] == ran


def test_a_run_records_how_it_computed(tmp_path, tiny_cfg):
    from s2s_lightning.train import train

    record = train(tiny_cfg(), tmp_path / "run")
    numerics = record["numerics"]
    assert numerics["world_size"] == 1 and numerics["tf32"] is False and numerics["precision"] == "32-true"
    assert numerics["ran_in"] == {
        "encoder_lstm": "float32",
        "decoder_lstm": "float32",
        "output_layer": "float32",
    }


# --- 2. nothing in a training step reads a device value -------------------------------------------------
class ReadsPerStep(pl.Callback):
    """Device reads of each whole step: from its on_train_batch_start to the next one's, so Lightning's
    hooks after on_train_batch_end (the logger connector, the progress bar) are counted too."""

    def __init__(self):
        self.mode, self.per_step, self.step = DeviceReads(), [], None

    def _close(self):
        if self.step is not None:
            self.mode.__exit__(None, None, None)
            self.per_step.append((self.step, list(self.mode.reads)))
            self.step = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._close()
        self.step = trainer.global_step
        self.mode.reads = []
        self.mode.__enter__()

    def on_train_epoch_end(self, trainer, pl_module):
        self._close()  # the epoch's end reads its sums once, by design: not a step


PRECISIONS = ["32-true", pytest.param("bf16-mixed", marks=pytest.mark.skipif("not bf16_lstm_on_cpu()"))]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_a_training_step_reads_nothing_from_the_device(tiny_cfg, monkeypatch, ratio, precision):
    """Forward, loss, logging and the progress bar, backward, clipping and the fused optimizer step (the
    settings a CUDA run gets) of every step read no tensor value on the host: none in 100 steps, the
    divergence checks included (they read a copy sent home without waiting). Before, the progress bar
    read the train loss back every step (100 reads in 100 steps) and each check read the loss (a sync
    every 50 steps). Packing reads the lengths, which live on the host: not counted."""
    counter = ReadsPerStep()
    real_pack, real_lstm = model_module.pack_padded_sequence, model_module.run_lstm

    def pack(*args, **kwargs):
        with counter.mode.paused():
            return real_pack(*args, **kwargs)

    def lstm(lstm, x, hx, dtype):
        if isinstance(x, torch.Tensor):
            return real_lstm(lstm, x, hx, dtype)
        with counter.mode.paused():  # a packed LSTM reads its batch sizes, a host tensor
            return real_lstm(lstm, x, hx, dtype)

    monkeypatch.setattr(model_module, "pack_padded_sequence", pack)
    monkeypatch.setattr(model_module, "run_lstm", lstm)
    cfg = tiny_cfg(
        **{
            "data.addition.train_size": 1700,
            "train.teacher_forcing_ratio": ratio,
            "train.fused_optimizer": True,
            "train.precision": precision,
            "train.lstm_precision": "fp32",
        }
    )
    bundle = DataBundle(cfg)
    system = Seq2SeqSystem(cfg, Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model))
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        precision=precision,
        callbacks=[counter],
        logger=False,
        limit_val_batches=0,
        enable_progress_bar=True,
        enable_checkpointing=False,
        gradient_clip_val=5.0,
        log_every_n_steps=50,
    )
    loader = bundle.loader("train", shuffle=True)
    collate_on_host = loader.collate_fn

    def collate(items):  # batches are built on the host by design (loader workers on CUDA)
        with counter.mode.paused():
            return collate_on_host(items)

    loader.collate_fn = collate
    trainer.fit(system, loader)
    steady = counter.per_step[2:102]  # 100 steps, past the first (set-up work)
    assert len(steady) == 100 and [s for s, _ in steady if s % 50 == 0]  # loss checks among them
    assert [(s, reads) for s, reads in steady if reads] == []


class BlockingCopies(TorchDispatchMode):
    """Copies from one device to another that wait for the copy (non_blocking=False): on CUDA each is a
    sync. Counted on the "meta" device, which stands in for a GPU here."""

    def __init__(self):
        super().__init__()
        self.copies: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and kwargs.get("device") not in (None, args[0].device):
            if not kwargs.get("non_blocking", False):
                self.copies.append(f"{args[0].device} -> {kwargs['device']}")
        return func(*args, **kwargs)


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_a_step_on_another_device_copies_nothing_blocking(ratio):
    """pack_padded_sequence(enforce_sorted=False) copied its sort order to the device with a blocking
    copy: a sync in every batch whose sources differ in length. The encoder now sorts on the host and
    sends the order without blocking; the whole loss of a batch makes no blocking copy."""
    model = tiny_model(peeky=True).to("meta")
    batch = random_batch([5, 3, 4, 4], [2, 6, 3, 1]).to("meta")
    assert not batch.uniform
    with BlockingCopies() as mode:
        nll, _ = batch_nll(model, batch, ratio)
    assert nll.device.type == "meta" and mode.copies == []


def test_the_encoder_sorts_as_pack_padded_sequence_would():
    from torch.nn.utils.rnn import pack_padded_sequence

    model = tiny_model()
    b = random_batch([7, 3, 5, 3, 7, 1], [1] * 6)  # ties: the same order as torch's own sort
    state = model.encode(b.src, b.src_len, uniform=False)
    emb = model.encoder.embedding(b.src)
    _, (h, c) = model.encoder.lstm(
        pack_padded_sequence(emb, b.src_len, batch_first=True, enforce_sorted=False)
    )
    assert torch.equal(state.h, h) and torch.equal(state.c, c)


def test_batches_pin_and_move_without_blocking_and_keep_lengths_on_the_host():
    b = random_batch([5, 3, 4], [2, 4, 3])
    moved = b.to("meta")  # any other device: every tensor moves but the lengths
    assert moved.src.device.type == moved.tgt_out.device.type == moved.tgt_pos.device.type == "meta"
    assert moved.src_len.device.type == "cpu" and moved.uniform is False and moved.num_tokens == 2 + 4 + 3 + 3
    if torch.cuda.is_available():
        assert b.pin_memory().src.is_pinned()
    assert callable(Batch.pin_memory)


# --- 3. batches built without a Python loop per row; loaders for a GPU and for a laptop -----------------
def reference_collate(items):
    """The loop this replaced: one row at a time."""

    def pad(seqs):
        out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD_ID, dtype=torch.long)
        for row, seq in enumerate(seqs):
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return out

    index, srcs, tgts = zip(*items)
    return (
        torch.tensor(index),
        pad([list(s) + [EOS_ID] for s in srcs]),
        torch.tensor([len(s) + 1 for s in srcs]),
        pad([[SOS_ID] + list(t) for t in tgts]),
        pad([list(t) + [EOS_ID] for t in tgts]),
    )


def test_vectorised_collate_equals_the_row_loop():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        n = int(torch.randint(1, 9, (1,), generator=g))
        items = [
            (
                i,
                torch.randint(4, 50, (int(torch.randint(0, 7, (1,), generator=g)),), generator=g).tolist(),
                torch.randint(4, 50, (int(torch.randint(0, 7, (1,), generator=g)),), generator=g).tolist(),
            )
            for i in range(n)
        ]
        b = collate(items)
        for got, want in zip((b.index, b.src, b.src_len, b.tgt_in, b.tgt_out), reference_collate(items)):
            assert torch.equal(got, want)
        assert torch.equal(b.tgt_pos, (b.tgt_out.view(-1) != PAD_ID).nonzero().squeeze(1))
        assert b.uniform == bool((b.src_len == b.src.size(1)).all())


def test_loader_defaults_suit_a_gpu_and_a_laptop(tiny_cfg):
    cfg = tiny_cfg().data
    assert loader_settings(cfg, "cpu") == (0, False)
    assert loader_settings(cfg, "cuda") == (2, torch.cuda.is_available())
    assert loader_settings(cfg.model_copy(update={"num_workers": 3, "pin_memory": False}), "cuda") == (
        3,
        False,
    )
    bundle = DataBundle(tiny_cfg(**{"data.num_workers": 1}))
    loader = bundle.loader("train", shuffle=True)
    assert loader.num_workers == 1 and loader.persistent_workers
    batches = list(itertools.islice(loader, 3))
    assert all(isinstance(b, Batch) for b in batches)


# --- 4. no arithmetic on padding, TF32 on CUDA, packing only where lengths differ -----------------------
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_the_output_layer_on_real_positions_gives_the_full_loss(ratio):
    model = tiny_model(peeky=True)
    b = random_batch([5, 3, 4, 2], [2, 6, 3, 1])
    torch.manual_seed(1)
    full = model(b.src, b.src_len, b.tgt_in, ratio)
    torch.manual_seed(1)
    nll, correct = batch_nll(model, b, ratio)
    want_nll, want_tokens, want_correct = masked_nll(full, b.tgt_out)
    torch.testing.assert_close(nll, want_nll)
    assert b.num_tokens == int(want_tokens) and int(correct) == int(want_correct)


def test_packing_is_skipped_when_every_source_has_the_same_length():
    model = tiny_model()
    b = random_batch([4, 4, 4], [2, 3, 1])
    assert b.uniform
    packed, plain = (
        model.encode(b.src, b.src_len, uniform=False),
        model.encode(b.src, b.src_len, uniform=True),
    )
    assert torch.equal(packed.h, plain.h) and torch.equal(packed.c, plain.c)
    assert not random_batch([4, 3, 4], [2, 3, 1]).uniform


def test_tf32_is_switched_on_for_cuda_only():
    before = torch.get_float32_matmul_precision()
    try:
        assert use_tf32(True, "cpu") is False and torch.get_float32_matmul_precision() == before
        assert use_tf32(True, "cuda") is True and torch.get_float32_matmul_precision() == "high"
        assert use_tf32(False, "cuda") is False and torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)


# --- 5. DDP: each rank knows its share of the epoch; validation is sharded -------------------------------
def test_evaluation_batches_are_sharded_across_ranks(monkeypatch):
    seen = []
    for rank in range(3):
        monkeypatch.setattr(BucketBatchSampler, "_rank_world", staticmethod(lambda r=rank: (r, 3)))
        sampler = EvalBatchSampler(50, 8)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        seen += [i for b in batches for i in b]
    assert sorted(seen) == list(range(50))  # every sentence once, across the ranks


def test_the_schedule_reads_steps_per_epoch_from_the_trainer(tiny_cfg):
    cfg = tiny_cfg(
        **{
            "train.optimizer": "sgd",
            "train.lr": 0.5,
            "train.lr_decay_start_epoch": 1,
            "train.lr_decay_every": 1,
        }
    )
    system = Seq2SeqSystem(cfg, tiny_model())  # the loader, made before DDP began, would have said 8

    class Trainer:
        num_training_batches = 4  # each of 2 ranks' share

    system._trainer = Trainer()
    sched = system.configure_optimizers()["lr_scheduler"]["scheduler"]
    for _ in range(4):
        sched.optimizer.step()
        sched.step()
    assert sched.get_last_lr() == [0.25]  # one epoch of this rank's 4 steps: decayed once from 0.5


# --- 6. cluster placement -------------------------------------------------------------------------------
def test_workers_use_the_devices_the_process_was_given(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert parse_gpus("all", None) == (4, ["4", "5", "6", "7"])
    assert parse_gpus("0,2", None) == (2, ["4", "6"])  # indices into what this job was given
    assert parse_gpus("all", None, 1, 2) == (2, ["4,5", "6,7"])
    mig = "MIG-1b2c3d4e-0000-1111-2222-333344445555,MIG-aaaabbbb-0000-1111-2222-333344445555"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mig)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_gpus("all", None) == (2, mig.split(","))
    with pytest.raises(S2SError, match="only 2 are visible"):
        parse_gpus("0,2", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert parse_gpus("all", None) == (3, ["0", "1", "2"])


# --- 7. smaller things ----------------------------------------------------------------------------------
def test_deterministic_runs_do_not_nan_fill_every_new_tensor(tmp_path, tiny_cfg):
    from s2s_lightning.train import make_trainer

    make_trainer(tiny_cfg(), tmp_path, [])
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False


@pytest.fixture
def torch_flags():
    """Put torch's global determinism flags back as they were after a test sets them."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


@pytest.mark.parametrize(
    "setting, device, algorithms, cudnn",
    [
        ("auto", "cpu", True, True),  # free on a CPU: runs and resumes repeat exactly
        ("auto", "cuda", False, True),  # no sync a step: index_select's backward keeps its atomics
        (True, "cuda", True, True),  # everything, at a sync a step (index_put_'s range check)
        (False, "cpu", False, False),
    ],
)
def test_determinism_is_a_policy_by_device_and_is_recorded(torch_flags, setting, device, algorithms, cudnn):
    """train.deterministic=true (the old default) sent CUDA's index_select backward through a deterministic
    index_put_ that reads its indices' range to the host every step; the GPU test never turned it on."""
    policy = use_deterministic(setting, device)
    assert policy == {"setting": str(setting).lower(), "algorithms": algorithms, "cudnn": cudnn}
    assert torch.are_deterministic_algorithms_enabled() is algorithms
    assert torch.backends.cudnn.deterministic is cudnn and torch.backends.cudnn.benchmark is False
    assert policy == deterministic_policy(setting, device)  # what a run records in numerics


def test_decoding_batches_are_larger_on_cuda_and_adam_is_fused_there(tiny_cfg, monkeypatch):
    cfg = tiny_cfg()
    assert decode_batch_size(cfg.eval, "cpu") == 64 and decode_batch_size(cfg.eval, "cuda") == 512
    assert decode_batch_size(tiny_cfg(**{"eval.batch_size": 7}).eval, "cuda") == 7
    system, made, real = Seq2SeqSystem(cfg, tiny_model()), [], torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam", lambda params, **kw: made.append(kw["fused"]) or real(params))
    system.configure_optimizers()
    system._device = torch.device("cuda", 0)  # what Lightning sets when it moves the system to a GPU
    system.configure_optimizers()
    assert made == [False, True]
    assert fused_optimizer(tiny_cfg(**{"train.fused_optimizer": True}).train, "cpu")  # forced on a CPU
    assert not fused_optimizer(tiny_cfg(**{"train.fused_optimizer": False}).train, "cuda")
    # 16-mixed's scaler must unscale before clipping: auto leaves Adam unfused there, true is refused
    assert not fused_optimizer(tiny_cfg(**{"train.precision": "16-mixed"}).train, "cuda")
    with pytest.raises(S2SError, match="train.fused_optimizer=true cannot be clipped under 16-mixed"):
        tiny_cfg(**{"train.precision": "16-mixed", "train.fused_optimizer": True})


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_configuration_a_cuda_run_gets_trains_on_a_cpu(tmp_path, tiny_cfg, precision):
    """Every choice CUDA makes, forced through the real train(): fused Adam with clipping, loader workers,
    the decoding batch, fp32 LSTMs. Under bf16-mixed, Lightning's mixed-precision plugin refused clipping
    with a fused optimizer: the README's one-GPU example crashed at its first optimizer step."""
    cfg = tiny_cfg(
        **{
            "train.precision": precision,
            "train.fused_optimizer": True,
            "train.grad_clip": 5.0,
            "train.lstm_precision": "fp32",
            "data.num_workers": 2,
            "eval.batch_size": 512,
            "train.max_epochs": 2,
        }
    )
    record = train(cfg, tmp_path)
    assert record["status"] == "completed", record["error"]
    assert record["numerics"]["fused_optimizer"] is True and record["numerics"]["precision"] == precision


def count_reads(fn, *args, **kwargs) -> tuple[int, torch.Tensor]:
    with DeviceReads() as mode:
        out = fn(*args, **kwargs)
    return len([r for r in mode.reads if "local_scalar" in r]), out


def test_search_reads_the_device_once_a_step():
    """An untrained model runs most hypotheses to their length limit (1.5 * 7 + 10 = 20 steps here)."""
    model = tiny_model(vocab=40).eval()
    b = random_batch([6] * 5, [1] * 5, vocab=40)  # sources of 6 tokens and <eos>
    steps = 20
    reads, out = count_reads(greedy, model, b.src, b.src_len)
    assert out.size(1) <= steps and reads <= out.size(1)
    reads, out = count_reads(beam_search, model, b.src, b.src_len, beam_size=4)
    assert reads <= steps + 1


# --- on a GPU -------------------------------------------------------------------------------------------
class SyncIsAnError(pl.Callback):
    """torch.cuda's sync debug mode set to "error" for every whole training step after the first: from its
    on_train_batch_start to the next one's (Lightning's hooks after on_train_batch_end included)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        torch.cuda.set_sync_debug_mode("error" if trainer.global_step > 0 else 0)

    def on_train_epoch_end(self, trainer, pl_module):
        torch.cuda.set_sync_debug_mode(0)  # an epoch's end reads its sums once, by design


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_a_cuda_training_step_never_syncs_and_keeps_its_lstms_out_of_fp16(tiny_cfg, precision, ratio):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = tiny_cfg(
        **{
            "data.addition.train_size": 1700,
            "train.precision": precision,
            "train.teacher_forcing_ratio": ratio,
            "model.peeky": True,
        }
    )
    bundle = DataBundle(cfg)
    system = Seq2SeqSystem(cfg, Seq2Seq(len(bundle.src_vocab), len(bundle.tgt_vocab), cfg.model))
    trainer = pl.Trainer(
        max_epochs=2,  # the second epoch starts at step 54: its first step is watched too
        accelerator="gpu",
        devices=1,
        precision=precision,
        logger=False,
        callbacks=[SyncIsAnError()],
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_checkpointing=False,
        gradient_clip_val=5.0,
    )
    use_deterministic(cfg.train.deterministic, "cuda")  # what a run on CUDA gets (auto)
    try:
        trainer.fit(system, bundle.loader("train", shuffle=True, device_type="cuda"))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    mixed = "bfloat16" if precision == "bf16-mixed" else "float32"
    assert system.model.ran_in() == {
        "encoder_lstm": "float32",
        "decoder_lstm": "float32",
        "output_layer": mixed,
    }


# Every place the package decides something because the device is CUDA, and the setting a CPU test forces
# that choice with (or why it is none). The GPU measurement tools (acceptance.py, bench.py) are left out:
# their dry runs are the CPU test. A new `"cuda"` branch without an entry here fails the test below.
CUDA_CHOICES = {
    "model.fused_optimizer": "train.fused_optimizer",
    "model.DECODE_BATCH_SIZE": "eval.batch_size",
    "data.loader_settings": "data.num_workers, data.pin_memory (pinning needs CUDA: untested on a CPU)",
    "model.use_tf32": "train.tf32 (sets CUDA's matmul flags: untested on a CPU)",
    "model.deterministic_policy": "train.deterministic (the CPU test forces the CUDA policy's flags)",
    "model.check_precision": "no choice: refuses a mixed precision a CPU cannot run",
    "environment.parse_device": "no choice: parses --device",
    "environment.peak_memory_mb": "no choice: measures",
    "system.numerics": "no choice: records the TF32 flag",
    "system.Seq2SeqSystem._send_loss_home": "no choice: a CUDA event marks the copy's end (a CPU's is done)",
    "resume.RandomState.state_dict": "no choice: saves the CUDA generators where there are any",
    "resume.RandomState.load_state_dict": "no choice: restores them",
}


def test_every_cuda_branch_is_a_setting_a_cpu_test_can_force():
    import ast
    from pathlib import Path

    package = Path(model_module.__file__).parent
    found = set()
    for path in package.rglob("*.py"):
        if path.name in ("acceptance.py", "bench.py"):
            continue
        module = ".".join(path.relative_to(package).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for top in tree.body:
            scopes = (
                [(top, "")] if not isinstance(top, ast.ClassDef) else [(s, f"{top.name}.") for s in top.body]
            )
            for scope, owner in scopes:
                name = getattr(scope, "name", None) or next(
                    (t.id for t in getattr(scope, "targets", []) if isinstance(t, ast.Name)), "?"
                )
                if any(isinstance(n, ast.Constant) and n.value == "cuda" for n in ast.walk(scope)):
                    found.add(f"{module}.{owner}{name}")
    assert found == set(CUDA_CHOICES), (
        f"new: {sorted(found - set(CUDA_CHOICES))}, gone: {sorted(set(CUDA_CHOICES) - found)}"
    )
