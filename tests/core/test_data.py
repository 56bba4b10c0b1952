"""Data: the addition task, vocabularies, reversal, bucketing, and the translation readers."""

import gzip
import re

import pytest

from s2s_lightning.corpus import load_corpus, make_addition
from s2s_lightning.data import BucketBatchSampler, DataBundle, collate
from s2s_lightning.environment import CACHE_ENV
from s2s_lightning.errors import S2SError
from s2s_lightning.text import (
    EOS_ID,
    PAD_ID,
    SOS_ID,
    MosesTokenizer,
    Vocab,
    reverse_tokens,
    tokenize_all,
)
from tests.conftest import MULTI30K


def test_addition_is_deterministic_disjoint_and_correct(tiny_cfg):
    cfg = tiny_cfg()
    a, b = make_addition(cfg.data, seed=0), make_addition(cfg.data, seed=0)
    assert a == b
    assert make_addition(cfg.data, seed=1) != a
    questions = [set(a[s][0]) for s in ("train", "val", "test")]
    assert sum(map(len, questions)) == 380 and len(set.union(*questions)) == 380
    for q, ans in zip(*a["train"]):
        x, y = q.split("+")
        assert int(x) + int(y) == int(ans) and int(x) <= 999


def test_addition_questions_are_one_dataset_unless_the_data_seed_is_null(tiny_cfg):
    runs = [tiny_cfg(seed=s) for s in (0, 1)]
    assert load_corpus(runs[0].data, runs[0].seed) == load_corpus(runs[1].data, runs[1].seed)
    own = [tiny_cfg(seed=s, **{"data.addition.seed": None}) for s in (0, 1)]
    assert load_corpus(own[0].data, 0) == load_corpus(runs[0].data, 0)
    assert load_corpus(own[1].data, 1) != load_corpus(own[0].data, 0)
    assert load_corpus(tiny_cfg(**{"data.addition.seed": 7}).data, 0) == make_addition(runs[0].data, 7)


def test_addition_default_sizes_are_the_books():
    from s2s_lightning.config import build_config

    cfg = build_config()
    assert (cfg.data.addition.train_size, cfg.data.addition.test_size) == (45_000, 5_000)


def test_reversal_keeps_specials_in_place_and_is_invertible():
    ids = [SOS_ID, 7, 8, 9, EOS_ID, PAD_ID, PAD_ID]
    rev = reverse_tokens(ids)
    assert rev == [SOS_ID, 9, 8, 7, EOS_ID, PAD_ID, PAD_ID]
    assert reverse_tokens(rev) == ids


def test_bundle_reverses_real_tokens_only(tiny_cfg):
    fwd, rev = DataBundle(tiny_cfg()), DataBundle(tiny_cfg(**{"data.reverse_source": True}))
    for a, b in zip(fwd.splits["test"].src_ids, rev.splits["test"].src_ids):
        assert b == a[::-1]
    batch = collate([(0, rev.splits["test"].src_ids[0], rev.splits["test"].tgt_ids[0])])
    assert batch.src[0, int(batch.src_len[0]) - 1] == EOS_ID  # <eos> stays last after reversal
    assert fwd.splits["test"].tgt_ids == rev.splits["test"].tgt_ids


def test_vocab_min_freq_max_size_and_unk():
    v = Vocab.build([["a", "a", "b", "b", "c"], ["a"]], min_freq=2)
    assert v.itos[4:] == ["a", "b"]
    assert v.encode(["c", "a"]) == [3, 4]
    assert Vocab.build([["a", "a", "b", "b", "c"]], max_size=1).itos[4:] == ["a"]
    assert v.decode([4, 5, EOS_ID, 4]) == ["a", "b"]


@pytest.mark.parametrize("bucketing", [True, False])
def test_batches_cover_every_example_once(bucketing):
    lengths = [i % 17 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, 32, seed=0, bucketing=bucketing)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    if bucketing:
        assert spread < 2  # same-length minibatches
    else:
        assert spread > 10
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_collate_shapes_and_specials():
    batch = collate([(0, [5, 6, 7], [8, 9]), (1, [5], [8, 9, 10])])
    assert batch.src.shape == (2, 4) and batch.src_len.tolist() == [4, 2]
    assert batch.tgt_in.tolist() == [[SOS_ID, 8, 9, PAD_ID], [SOS_ID, 8, 9, 10]]
    assert batch.tgt_out.tolist() == [[8, 9, EOS_ID, PAD_ID], [8, 9, 10, EOS_ID]]


def test_multi30k_reads_local_copy(tiny_multi30k_cfg):
    bundle = DataBundle(tiny_multi30k_cfg(**{"data.lowercase": True}))
    assert len(bundle.splits["train"].src_ids) == 300 and len(bundle.splits["test"].src_ids) == 30
    assert bundle.splits["test"].src_text[0].startswith("Ein Mann mit einem orangefarbenen Hut")
    assert all(t == t.lower() for t in bundle.tgt_vocab.itos)
    assert "." in bundle.tgt_vocab.stoi  # Moses splits the final period off


def _write(folder, name, lines, gz=False):
    data = "".join(line + "\n" for line in lines).encode()
    (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)


def _parallel(tmp_path, tiny_cfg, **files):
    for name, lines in files.items():
        _write(tmp_path, name, lines)
    return tiny_cfg(
        **{
            "data.name": "parallel",
            "data.dir": str(tmp_path),
            "data.src_lang": "en",
            "data.tgt_lang": "fr",
            "data.test_split": "test",
        }
    )


def test_parallel_misaligned_files_error(tmp_path, tiny_cfg):
    cfg = _parallel(
        tmp_path,
        tiny_cfg,
        **{
            "train.en": ["a b", "c"],
            "train.fr": ["x"],
            "val.en": ["a"],
            "val.fr": ["x"],
            "test.en": ["a"],
            "test.fr": ["x"],
        },
    )
    with pytest.raises(S2SError, match="train.en has 2 lines but train.fr has 1"):
        DataBundle(cfg)


def test_parallel_missing_file_error(tmp_path, tiny_cfg):
    cfg = _parallel(tmp_path, tiny_cfg, **{"train.en": ["a"], "train.fr": ["x"]})
    with pytest.raises(S2SError, match=r"missing data file .*val.en"):
        DataBundle(cfg)


def test_parallel_skips_empty_training_lines_and_keeps_eval_aligned(tmp_path, tiny_cfg):
    cfg = _parallel(
        tmp_path,
        tiny_cfg,
        **{
            "train.en": ["a b", "", "c"],
            "train.fr": ["x", "y", "z"],
            "val.en": ["a"],
            "val.fr": ["x"],
            "test.en": ["a", ""],
            "test.fr": ["x", "y"],
        },
    )
    bundle = DataBundle(cfg)
    assert len(bundle.splits["train"].src_ids) == 2 and len(bundle.splits["test"].src_ids) == 2


def test_invalid_utf8_is_a_clear_error(tmp_path, tiny_cfg):
    cfg = _parallel(
        tmp_path,
        tiny_cfg,
        **{"train.fr": ["x"], "val.en": ["a"], "val.fr": ["x"], "test.en": ["a"], "test.fr": ["x"]},
    )
    (tmp_path / "train.en").write_bytes(b"caf\xe9\n")
    with pytest.raises(S2SError, match="train.en is not valid UTF-8"):
        DataBundle(cfg)


def test_huge_sentence_is_a_clear_error(tmp_path, tiny_cfg):
    cfg = _parallel(
        tmp_path,
        tiny_cfg,
        **{
            "train.en": ["a"],
            "train.fr": ["x"],
            "val.en": ["a"],
            "val.fr": ["x"],
            "test.en": [" ".join(["w"] * 10_000)],
            "test.fr": ["x"],
        },
    )
    with pytest.raises(S2SError, match="test sentence 1 has 10000 tokens"):
        DataBundle(cfg)


def test_multi30k_unknown_language_error(tiny_multi30k_cfg):
    with pytest.raises(S2SError, match="not a Multi30k language"):
        DataBundle(tiny_multi30k_cfg(**{"data.src_lang": "es"}))


def test_multi30k_downloads_into_the_cache_and_checks_sha256(tmp_path, monkeypatch, tiny_multi30k_cfg):
    """The online path, served from the local copy through a file:// 'upstream'."""
    import s2s_lightning.corpus as data

    cfg = tiny_multi30k_cfg(**{"data.dir": None})
    monkeypatch.delenv(data.MULTI30K_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(data, "MULTI30K_URL", "file://" + str(tmp_path / "upstream") + "/{file}")
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    for name in ("train.de.gz", "train.en.gz", "val.de.gz", "val.en.gz", "test_2016_flickr.de.gz"):
        (upstream / name).write_bytes((MULTI30K / name).read_bytes())
    (upstream / "test_2016_flickr.en.gz").write_bytes(gzip.compress(b"tampered\n"))
    with pytest.raises(S2SError, match="test_2016_flickr.en.gz fails its sha256 check"):
        DataBundle(cfg)
    cache = tmp_path / "cache" / "multi30k"
    assert not (cache / "test_2016_flickr.en.gz").exists() and not list(cache.glob("*.part"))
    (upstream / "test_2016_flickr.en.gz").write_bytes((MULTI30K / "test_2016_flickr.en.gz").read_bytes())
    bundle = DataBundle(cfg)
    assert len(bundle.splits["test"].src_ids) == 30 and len(list(cache.glob("*.gz"))) == 6


def test_multi30k_offline_without_a_copy_is_a_clear_error(tmp_path, monkeypatch, tiny_multi30k_cfg):
    import s2s_lightning.corpus as data

    monkeypatch.delenv(data.MULTI30K_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(data, "MULTI30K_URL", "file://" + str(tmp_path / "nowhere") + "/{file}")
    with pytest.raises(S2SError, match="cannot be downloaded.*set data.dir"):
        DataBundle(tiny_multi30k_cfg(**{"data.dir": None}))


def test_tokenized_corpora_are_cached_by_tokenizer_and_content(tmp_path, monkeypatch):
    """Every trial of a study tokenized the whole corpus again (seconds each); now the first one does."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    lines = ["Ein Mann schläft.", "Zwei Hunde (braun) spielen!", ""]
    de = MosesTokenizer("de")
    calls = []
    real = de.tokenize
    monkeypatch.setattr(de, "tokenize", lambda text: calls.append(text) or real(text))
    first = tokenize_all(de, lines)
    assert first == [real(line) for line in lines] and len(calls) == 3
    assert tokenize_all(de, lines) == first and len(calls) == 3  # read back, not tokenized again
    assert len(list((tmp_path / "tokenized").glob("*.json.gz"))) == 1
    tokenize_all(de, [*lines[:2], "Ein anderer Satz."])  # other content: another entry
    lower = MosesTokenizer("de", lowercase=True)  # another tokenizer: another entry, its own tokens
    assert tokenize_all(lower, lines)[0] == ["ein", "mann", "schläft", "."]
    assert len(list((tmp_path / "tokenized").glob("*.json.gz"))) == 3
    for path in (tmp_path / "tokenized").glob("*.json.gz"):
        path.write_bytes(b"cut sho")  # a damaged entry is tokenized again, not trusted
    calls.clear()
    assert tokenize_all(de, lines) == first and len(calls) == 3
    assert not list((tmp_path / "tokenized").glob(".*.tmp"))


@pytest.mark.parametrize("given", ["data.dir", "$S2S_MULTI30K_DIR"])
def test_a_mistyped_multi30k_folder_is_an_error_not_a_download_target(tmp_path, monkeypatch, given):
    """data.dir or $S2S_MULTI30K_DIR naming a folder without the files would have been created and
    downloaded into (on a machine with internet); downloads go to the cache only."""
    from s2s_lightning.config import build_config
    from s2s_lightning.corpus import check_data

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("s2s_lightning.corpus.download_multi30k", no_download)
    monkeypatch.setattr("urllib.request.urlopen", no_download)
    typo = tmp_path / "multi30kk"
    monkeypatch.delenv("S2S_MULTI30K_DIR", raising=False)
    if given == "data.dir":
        cfg = build_config({}, {"data.name": "multi30k", "data.dir": str(typo)})
    else:
        monkeypatch.setenv("S2S_MULTI30K_DIR", str(typo))
        cfg = build_config({}, {"data.name": "multi30k"})
    for attempt in (lambda: load_corpus(cfg.data, 0), lambda: check_data(cfg.data, 0, fetch=True)):
        with pytest.raises(S2SError, match=f"not in {typo}, the folder {re.escape(given)} names"):
            attempt()
    assert not typo.exists()
