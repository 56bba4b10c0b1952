"""The report generator on hand-made run records (tests/fixtures/records, see make_fixtures.py).

Table numbers are recomputed here straight from record.json / metrics.json / the text files, not
through the report's own loading code, so a loader or aggregation bug shows up as a mismatch.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.lines import Line2D

from s2s_lightning import metrics as M
from s2s_lightning.analysis import exact_mcnemar, paired_bleu
from s2s_lightning.cli import build_parser
from s2s_lightning.cli import main as s2s
from s2s_lightning.errors import S2SError
from s2s_lightning.records import write_json
from s2s_lightning.report.buckets import bucket_label as _bucket_label
from s2s_lightning.report.buckets import bucket_scores, merged_edges
from s2s_lightning.report.build import build_report
from s2s_lightning.report.design import arm_palette
from s2s_lightning.report.design import figure as _figure
from s2s_lightning.report.design import legend as _legend
from s2s_lightning.report.figures import bucket_plot
from s2s_lightning.report.labels import MIN_FONT_PT, metric_label
from s2s_lightning.report.load import RunsSource, StudySource, WandbSource, load
from s2s_lightning.report.table import fmt_score, tex_escape
from s2s_lightning.report.tables import summary_table, table1

RECORDS = Path(__file__).parents[1] / "fixtures" / "records"
ADDITION, TRANSLATION = RECORDS / "addition", RECORDS / "translation"


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    return {
        task: build_report(RECORDS / task, out / task, command=f"s2s report --runs {task} -o {task}").parent
        for task in ("addition", "translation")
    }


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) | {"dir": p.parent} for p in sorted(folder.glob("*/record.json"))]


# ------------------------------------------------------------------------------------ tables
@pytest.mark.parametrize("task", ["addition", "translation"])
def test_summary_recomputed_from_records(reports, task):
    table = pd.read_csv(reports[task] / "tables" / "summary.csv")
    expected: dict[tuple, dict[str, list[float]]] = {}
    for r in records(RECORDS / task):
        if r["status"] == "completed":
            key = (r["axes"]["data.reverse_source"], r["axes"]["train.teacher_forcing_ratio"])
            for name, value in r["metrics"].items():
                expected.setdefault(key, {}).setdefault(name, []).append(value)
    assert len(table) == len(expected)
    for row in table.to_dict("records"):
        tf = row.get("train.teacher_forcing_ratio", 1.0)  # a column only where the axis varies
        values = expected[(row["data.reverse_source"], tf)]
        metrics = (
            [M.TEST_EXACT_MATCH, M.TEST_PPL]
            if task == "addition"
            else [M.TEST_BLEU, M.TEST_BLEU_TOK, M.TEST_CHRF]
        )
        for name in metrics:
            assert row[f"{name} n"] == len(values[name]) == row["n"]
            assert row[f"{name} mean"] == pytest.approx(statistics.mean(values[name]))
            assert row[f"{name} std"] == pytest.approx(statistics.stdev(values[name]))


def test_speed_and_memory_come_from_history_and_record(reports):
    runs = pd.read_csv(reports["addition"] / "tables" / "runs.csv")
    for r in records(ADDITION):
        row = runs[runs["run_dir"].astype(str).str.endswith(r["dir"].name)].iloc[0]
        history = r["dir"] / "history.csv"
        if history.is_file():
            expected = pd.read_csv(history)[M.TRAIN_TOKENS_PER_S].median()
            assert row[M.TRAIN_TOKENS_PER_S] == pytest.approx(expected)
        if r.get("peak_memory_mb") is not None:
            assert row["peak_memory_mb"] == pytest.approx(r["peak_memory_mb"])
    summary = pd.read_csv(reports["addition"] / "tables" / "summary.csv")
    done = runs[runs["status"] == "completed"]
    for row in summary.to_dict("records"):
        speeds = done[done["arm"] == row["arm"]][M.TRAIN_TOKENS_PER_S]
        assert row[M.TRAIN_TOKENS_PER_S] == pytest.approx(speeds.median())


def test_arms_are_named_by_varying_axes_and_ordered(reports):
    table = pd.read_csv(reports["addition"] / "tables" / "summary.csv")
    assert list(table["arm"]) == ["forward · tf=1.0", "reversed · tf=0.5", "reversed · tf=1.0"]
    # Order and labels do not depend on the order the records are given in.
    shuffled = load(RunsSource(tuple(sorted(ADDITION.iterdir(), reverse=True))))
    assert shuffled.arms == list(table["arm"])
    assert pd.read_csv(reports["translation"] / "tables" / "summary.csv")["arm"].tolist() == [
        "forward",
        "reversed",
    ]


def test_best_mean_is_bold_ties_included_and_no_winner_when_all_tie():
    data = load(RunsSource((ADDITION,)))
    table = summary_table(data)
    col = metric_label(M.TEST_EXACT_MATCH)
    best = table.data[f"{M.TEST_EXACT_MATCH} mean"].idxmax()
    assert {(r, c) for r, c in table.bold if c == col} == {(best, col)}
    data.runs[M.TEST_EXACT_MATCH] = 0.0  # a demo budget that learned nothing: every arm ties
    assert not any(c == col for _, c in summary_table(data).bold)
    tied = data.runs["arm"] != data.arms[0]  # two arms share the best mean: both are bold
    data.runs[M.TEST_EXACT_MATCH] = np.where(tied, 0.5, 0.1)
    assert {r for r, c in summary_table(data).bold if c == col} == {1, 2}


def test_beam_table_from_eval_folders(reports):
    beam = pd.read_csv(reports["addition"] / "tables" / "beam.csv")
    for arm_dir, arm in [("fwd-tf1", "forward · tf=1.0"), ("rev-tf0.5", "reversed · tf=0.5")]:
        scores = [
            json.loads((ADDITION / f"{arm_dir}-s{s}" / "eval" / "test_beam3" / "metrics.json").read_text())[
                "metrics"
            ][M.TEST_EXACT_MATCH]
            for s in range(3)
        ]
        row = beam[(beam["arm"] == arm) & (beam["beam_size"] == 3)].iloc[0]
        assert (row["n"], row["mean"]) == (3, pytest.approx(statistics.mean(scores)))
    assert sorted(beam["beam_size"].unique()) == [1, 3]


def test_table1_singles_at_largest_beam_and_ensemble(reports):
    t1 = pd.read_csv(reports["translation"] / "tables" / "table1.csv")
    assert list(t1["method"]) == [
        "Single forward LSTM, beam 12",
        "Single reversed LSTM, beam 12",
        "Ensemble of 2 reversed LSTMs, beam 12",
    ]
    rev12 = [
        json.loads((TRANSLATION / f"rev-s{s}" / "eval" / "test_beam12" / "metrics.json").read_text())[
            "metrics"
        ][M.TEST_BLEU]
        for s in range(2)
    ]
    assert t1.loc[1, f"{M.TEST_BLEU} mean"] == pytest.approx(statistics.mean(rev12))
    ensemble = json.loads((TRANSLATION / "ensemble-rev-beam12" / "metrics.json").read_text())
    assert t1.loc[2, f"{M.TEST_BLEU} mean"] == pytest.approx(ensemble["metrics"][M.TEST_BLEU])
    assert not (reports["addition"] / "tables" / "table1.csv").exists()  # no addition ensemble: no Table 1


def test_table1_keeps_ensembles_of_different_arms_apart():
    """Ensembles of the same arms are one row (mean over evaluations); a mix of arms is named by the
    values its members differ in, and never pooled with another mix (they used to share a row by size)."""
    data = load(RunsSource((TRANSLATION,)))
    arm_runs = {arm: sorted(data.runs[data.runs["arm"] == arm]["run_dir"]) for arm in data.arms}
    template = data.evals[data.evals["n_members"] == 2].iloc[0]
    rows = []
    for members, bleu in [
        ((arm_runs["forward"][0], arm_runs["reversed"][0]), 20.0),
        ((arm_runs["forward"][1], arm_runs["reversed"][1]), 22.0),
        ((arm_runs["forward"][0], arm_runs["forward"][1]), 10.0),
    ]:
        rows.append(template.copy())
        rows[-1]["member_runs"], rows[-1][M.TEST_BLEU] = list(members), bleu
    data.evals = pd.concat([data.evals, pd.DataFrame(rows)], ignore_index=True)
    t1 = table1(data).data.set_index("method")
    mixed = t1.loc["Ensemble of 2 LSTMs (forward + reversed), beam 12"]
    assert (mixed[f"{M.TEST_BLEU} mean"], mixed[f"{M.TEST_BLEU} n"]) == (21.0, 2)
    assert t1.loc["Ensemble of 2 forward LSTMs, beam 12", f"{M.TEST_BLEU} mean"] == 10.0
    assert t1.loc["Ensemble of 2 reversed LSTMs, beam 12", f"{M.TEST_BLEU} n"] == 1  # the fixture's own
    assert list(t1.index[-3:]) == [
        "Ensemble of 2 forward LSTMs, beam 12",
        "Ensemble of 2 reversed LSTMs, beam 12",
        "Ensemble of 2 LSTMs (forward + reversed), beam 12",
    ]


def test_table1_for_addition_once_seeds_were_ensembled(tmp_path):
    runs = tmp_path / "addition"
    shutil.copytree(ADDITION, runs)
    members = [str(runs / f"rev-tf1-s{s}") for s in range(3)]
    write_json(
        runs / "ensemble" / "metrics.json",
        {"beam_size": 3, "split": "test", "members": members, "metrics": {M.TEST_EXACT_MATCH: 0.97}},
    )
    out = build_report(runs, tmp_path / "report", command="s2s report").parent
    t1 = pd.read_csv(out / "tables" / "table1.csv")
    assert list(t1["kind"]) == ["single"] * 3 + ["ensemble"]
    assert t1.iloc[-1]["method"].startswith("Ensemble of 3 reversed LSTMs") and t1.iloc[-1]["beam_size"] == 3
    assert t1.iloc[-1][f"{M.TEST_EXACT_MATCH} mean"] == pytest.approx(0.97)
    beam3 = [
        json.loads((runs / f"rev-tf1-s{s}" / "eval" / "test_beam3" / "metrics.json").read_text())["metrics"][
            M.TEST_EXACT_MATCH
        ]
        for s in range(3)
    ]
    single = t1[t1["arm"] == t1.iloc[-1]["arm"]].iloc[0]
    assert single["method"].endswith("beam 3") and single[f"{M.TEST_EXACT_MATCH} mean"] == pytest.approx(
        statistics.mean(beam3)
    )
    assert "Table 1 layout (Sutskever et al., 2014): test exact match" in (out / "README.md").read_text()


def test_a_fraction_short_of_one_never_prints_as_one():
    assert fmt_score(0.9996, math.nan, 1, M.TEST_EXACT_MATCH) == "0.9996"
    assert fmt_score(0.99949, math.nan, 1, M.TEST_EXACT_MATCH) == "0.999"
    assert fmt_score(1.0, 0.0, 2, M.TEST_EXACT_MATCH) == "1.000 ± 0.000"
    assert fmt_score(99.996, math.nan, 1, M.TEST_BLEU) == "100.00"  # BLEU is not a fraction


def test_significance_scores_come_from_the_text_files(reports):
    sig = pd.read_csv(reports["addition"] / "tables" / "significance.csv")
    # Only one-axis contrasts: reversal (tf 1.0) and teacher forcing (reversed); 3 seeds each.
    assert sorted(sig["axis"].unique()) == ["data.reverse_source", "train.teacher_forcing_ratio"]
    assert len(sig) == 6
    row = sig[(sig["axis"] == "data.reverse_source") & (sig["seed"] == 0)].iloc[0]
    for arm_dir, column in [("fwd-tf1-s0", "score_a"), ("rev-tf1-s0", "score_b")]:
        hyp = (ADDITION / arm_dir / "test.hyp.txt").read_text().splitlines()
        ref = (ADDITION / arm_dir / "test.ref.txt").read_text().splitlines()
        assert row[column] == pytest.approx(np.mean([h == r for h, r in zip(hyp, ref)]))
    assert sig["p_value"].between(0, 1).all()
    bleu = pd.read_csv(reports["translation"] / "tables" / "significance.csv")
    assert len(bleu) == 2 and (bleu["delta"] > 10).all() and (bleu["p_value"] < 0.05).all()
    # The display says per seed which arm a significant difference favours, never only "significant".
    text = (reports["translation"] / "tables" / "significance.md").read_text()
    assert re.search(r"\|\s+2 / 0 \|", text) and "B / A better" in text
    for _, row in bleu.iterrows():
        assert f"{row['delta']:+.2f} ({row['p_value']:.3f})" in text


def test_exact_mcnemar_known_values():
    a = np.ones(10, dtype=bool)
    assert exact_mcnemar(a, ~a) == pytest.approx(2 / 2**10)  # 10 discordant pairs, all one way
    assert exact_mcnemar(a, a) == 1.0
    assert exact_mcnemar(np.r_[a[:5], ~a[:5]], np.r_[~a[:5], a[:5]]) == 1.0  # 5 wins, 5 losses
    # 8 wins, 2 losses: P(|2X - 10| >= 6) for X ~ Bin(10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert exact_mcnemar(np.r_[a[:8], ~a[:2]], np.r_[~a[:8], a[:2]]) == pytest.approx(112 / 1024)


def test_paired_bleu_identical_systems_are_not_significant():
    refs = ["a dog runs .", "two children play in the park ."]
    assert paired_bleu(refs, refs, refs, None)[2] == 1.0


def test_sweep_health_counts_every_status(reports):
    health = pd.read_csv(reports["addition"] / "tables" / "health.csv").set_index("item")["Run directories"]
    walls = [r["wall_time_s"] for r in records(ADDITION)]
    assert (health["total"], health["completed"], health["failed"], health["running"]) == (10, 9, 1, 0)
    assert health["compute hours (sum of wall_time_s)"] == pytest.approx(sum(walls) / 3600, abs=1e-3)
    running = pd.read_csv(reports["translation"] / "tables" / "health.csv").set_index("item")[
        "Run directories"
    ]
    assert running["running"] == 1
    runs = pd.read_csv(reports["translation"] / "tables" / "summary.csv")
    assert runs["n"].tolist() == [2, 2]  # the running run is in health, not in the results


def test_latex_and_markdown_escaping():
    assert tex_escape("a_b & 5% ± x") == r"a\_b \& 5\% $\pm$ x"
    from s2s_lightning.report.table import Table

    t = Table("t", "T", "c", pd.DataFrame({"A": ["x|y"], "B": ["1"]}), pd.DataFrame())
    assert t.markdown().splitlines() == ["| A    | B |", "|:-----|--:|", "| x\\|y | 1 |"]


# ----------------------------------------------------------------------------------- figures
EXPECTED_FIGURES = {
    "addition": {"test_exact_match", "val_curves", "by_length", "teacher_forcing", "effects"},
    "translation": {"test_bleu", "val_curves", "by_length", "by_frequency", "representations", "effects"},
}


@pytest.mark.parametrize("task", ["addition", "translation"])
def test_figures_are_real_plots(reports, task):
    folder = reports[task] / "figures"
    assert {p.stem for p in folder.glob("*.png")} == EXPECTED_FIGURES[task]
    for name in EXPECTED_FIGURES[task]:
        image = matplotlib.image.imread(folder / f"{name}.png")  # [H, W, 4] floats in 0..1
        assert image.shape[0] > 300 and image.shape[1] > 600
        rgb = (image[..., :3] * 255).astype(np.uint32)
        colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
        assert len(colours) > 50  # not blank, not one colour: lines, text and bands were drawn
        pdf = (folder / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 5000


def test_the_same_records_draw_the_same_figures(tmp_path):
    """The per-arm figure's seed dots came from seaborn's jitter, drawn from numpy's global generator: each
    report of the same records drew them elsewhere (and a report changed that global state)."""
    state = np.random.get_state()[1].copy()
    for out in ("a", "b"):
        build_report(ADDITION, tmp_path / out, command="s2s report")
    assert (np.random.get_state()[1] == state).all()
    pngs = list((tmp_path / "a" / "figures").glob("*.png"))
    assert len(pngs) == len(EXPECTED_FIGURES["addition"])
    for png in pngs:
        assert png.read_bytes() == (tmp_path / "b" / "figures" / png.name).read_bytes(), png.name


def test_bucket_labels_name_the_analysis_intervals(tmp_path):
    # analysis.buckets puts a sentence of length n in (lo, hi]: (0, 5] holds lengths 1 to 5.
    assert _bucket_label(0, 5, True) == "1–5" and _bucket_label(5, 6, True) == "6"
    assert _bucket_label(35, 1000, True) == "36+" and _bucket_label(3500, 1_000_000, False) == ">3500"
    assert _bucket_label(0, 500, False) == "0–500"
    data = load(RunsSource((ADDITION,)))
    for analysis in data.runs["analysis"]:  # every sentence in one bucket: no length figure
        if isinstance(analysis, dict) and analysis.get("by_length"):
            analysis["by_length"] = analysis["by_length"][:1]
    df = bucket_scores(data, "by_length")
    assert (
        df is None and bucket_plot(data, tmp_path, "by_length", df) is None and not list(tmp_path.iterdir())
    )


def test_a_bucket_of_one_sentence_is_merged_into_its_neighbour():
    """The Multi30k report's last length bucket held one sentence and made the figure's most striking
    point; buckets now merge, smallest first into its smaller neighbour, keeping the configured edges."""
    lengths = np.array(
        [3] * 40 + [8] * 200 + [13] * 300 + [18] * 250 + [23] * 120 + [28] * 60 + [33] * 8 + [40]
    )
    edges = merged_edges(lengths, [0, 5, 10, 15, 20, 25, 30, 35, 1000], 30)
    assert edges == [0, 5, 10, 15, 20, 25, 1000]
    counts = [int(((lengths > lo) & (lengths <= hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:])]
    assert min(counts) >= 30 and sum(counts) == len(lengths)
    assert merged_edges(np.array([1, 2]), [0, 1, 2], 30) == [0, 2]  # too few for two buckets: one


@pytest.mark.parametrize("task", ["addition", "translation"])
def test_every_bucket_point_has_an_interval_and_a_table(reports, task):
    table = pd.read_csv(reports[task] / "tables" / "by_length.csv")
    assert list(table.columns) == ["arm", "bucket", "lo", "hi", "n", "seeds", "score", "low", "high"]
    assert (table["low"] <= table["score"]).all() and (table["score"] <= table["high"]).all()
    assert (table["low"] < table["high"]).any()
    top = 1.0 if task == "addition" else 100.0
    assert table["low"].min() >= 0 and table["high"].max() <= top  # never past the metric's range
    n = table.groupby("bucket")["n"].first()
    assert n.sum() == len(
        (ADDITION if task == "addition" else TRANSLATION)
        .joinpath("fwd-tf1-s0" if task == "addition" else "fwd-s0", "test.ref.txt")
        .read_text()
        .splitlines()
    )
    assert n.min() >= min(30, n.sum() // 4)
    readme = (reports[task] / "README.md").read_text()
    section = readme.split("## Sentence length and word frequency")[1].split("\n## ")[0]
    assert "tables/by_length.csv" in section and "95% interval" in section and "(n=" in section


def test_palette_is_one_colour_per_arm_in_order():
    palette = arm_palette(["a", "b", "c"])
    assert list(palette) == ["a", "b", "c"] and len(set(palette.values())) == 3
    assert len(set(arm_palette([str(i) for i in range(14)]).values())) == 14


def test_legend_stays_inside_the_figure():
    """Six long Multi30k arm names in 3 columns ran past a 7-inch figure's right edge; the legend now
    takes fewer columns when it must, and keeps 3 when they fit."""
    long = [
        f"{n} layers · {d} · {p}" for n in (1, 2) for d in ("forward", "reversed") for p in ("plain", "peeky")
    ]
    for arms, ncol in ((long[:6], 2), (["a", "b", "c", "d"], 3)):
        fig, (ax,) = _figure(7, 4)
        ax.plot([0, 1], [0, 1])
        _legend(fig, [Line2D([], [], color=c) for c in arm_palette(arms).values()], arms, max_cols=3)
        fig.canvas.draw()
        (legend,) = fig.legends
        box = legend.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width and 0 <= box.y0, (box, fig.bbox)
        assert legend._ncols == ncol


def test_a_design_of_four_axes_gives_every_arm_its_own_line():
    """Colour, line style and a column per combination of the third and later axes: with the paper's four
    axes crossed, no two arms may share a line (seaborn would average them into one)."""
    from itertools import product
    from types import SimpleNamespace

    from s2s_lightning.report.design import Design

    axes = ["model.num_layers", "data.reverse_source", "model.peeky", "train.teacher_forcing_ratio"]
    arm_axes = {
        f"arm{i}": dict(zip(axes, values))
        for i, values in enumerate(product([1, 4], [False, True], [False, True], [1.0, 0.5]))
    }
    design = Design.of(SimpleNamespace(varying=axes, arm_axes=arm_axes), list(arm_axes))
    lines = {tuple(design.labels[arm].values()) for arm in arm_axes}
    assert len(lines) == 16 and len(design.order["col"]) == 4 and "peeky · tf=0.5" in design.order["col"]
    assert design.order["hue"] == ["1 layer", "4 layers"] and design.order["style"] == ["forward", "reversed"]
    assert design.caption() == "colour: layers, line style: source order, columns: decoder × teacher forcing"


def test_crowded_tick_labels_are_slanted_onto_one_line():
    from s2s_lightning.report.design import readable_ticks as _readable_ticks

    for labels, slanted in (
        (["1–5\n(n=7)", "6–10\n(n=390)"], False),
        ([f"{k}000–{k}500\n(n=88)" for k in range(8)], True),
    ):
        fig, (ax,) = _figure(4.6, 3)
        ax.plot(range(len(labels)), range(len(labels)))
        ax.set_xticks(range(len(labels)), labels)
        _readable_ticks(ax)
        ticks = ax.get_xticklabels()
        assert all(t.get_rotation() == (30 if slanted else 0) for t in ticks)
        assert all(("\n" in t.get_text()) != slanted for t in ticks)


def test_a_report_without_encoder_vectors_says_how_to_get_the_pca_figure(reports):
    readme = (reports["addition"] / "README.md").read_text()
    hint = readme.split("## Sentence representations", 1)[1].split("##", 1)[0]
    command = re.search(r"`s2s evaluate (\S+) --represent PHRASES`", hint)
    assert command and "reports/phrases.addition.txt" in hint
    best = max(records(RECORDS / "addition"), key=lambda r: r["metrics"].get("test/exact_match", -1))
    assert Path(command.group(1)).name == Path(best["run_dir"]).name  # the study's best run
    assert (Path(__file__).parents[2] / "reports" / "phrases.addition.txt").is_file()


def test_pca_labels_never_overprint():
    """The plain model's panel had 'Im Park spielt ...' printed over 'Zwei Männer arbeiten ...': two points
    at one height, 0.3 of the width apart, with labels longer than that gap."""
    from matplotlib.text import Text

    from s2s_lightning.report.figures import _annotate

    points = [
        [1.4, 1.03],
        [3.1, 1.05],
        [-2.55, 0.83],
        [-2.5, 0.56],
        [-2.3, 0.42],
        [-1.95, 0.57],
        [2.3, 0.5],
        [-0.3, -4.4],
    ]
    points = np.array(points)  # the plain panel's points (its y range matters: it sets how close 0.02 is)
    phrases = ["Im Park spielt ein Mädchen mit einem Ball.", "Zwei Männer arbeiten auf einer Baustelle."]
    phrases += [f"Ein Hund wirft einem Mann einen Ball zu ({k})." for k in range(6)]
    fig, (ax,) = _figure(6.5, 5)
    ax.scatter(points[:, 0], points[:, 1])
    _annotate(ax, points, phrases)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text()]  # leader lines are annotations without text
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    assert len(boxes) == len(phrases) and all(t.get_fontsize() >= MIN_FONT_PT for t in labels)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    # No leader line crosses another: segments from each moved label to its point.
    lines = [
        (np.array(a.xy), np.array(a.xyann)) for a in ax.texts if not a.get_text() and hasattr(a, "xyann")
    ]

    def crosses(p, q):
        (a, b), (c, d) = p, q
        side = lambda u, v, w: np.sign(np.cross(v - u, w - u))  # noqa: E731
        return side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0

    assert not any(crosses(p, q) for i, p in enumerate(lines) for q in lines[i + 1 :])


# ------------------------------------------------------------------------------------ README
def test_readme_ties_it_together(reports):
    readme = (reports["translation"] / "README.md").read_text()
    assert "s2s report --runs translation -o translation" in readme
    assert "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0" in readme
    assert "| Single reversed LSTM, beam 12" in readme and "5 records, 4 completed" in readme
    for link in [line.split("](")[1].split(")")[0] for line in readme.splitlines() if line.startswith("![")]:
        assert (reports["translation"] / link).is_file()
    assert "Exact match" in (reports["addition"] / "README.md").read_text()


# ------------------------------------------------------------------------------------ sources
def make_study(tmp_path: Path, kind: str, runs: Path = ADDITION) -> StudySource:
    import optuna

    if kind == "sqlite":
        storage_url = f"sqlite:///{tmp_path / 'optuna.db'}"
        storage = storage_url
    else:
        storage_url = str(tmp_path / "journal.log")
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage_url))
    study = optuna.create_study(study_name="addition", storage=storage, direction="maximize")
    for r in records(runs):
        state = (
            optuna.trial.TrialState.COMPLETE if r["status"] == "completed" else optuna.trial.TrialState.FAIL
        )
        study.add_trial(
            optuna.trial.create_trial(
                state=state, value=r["metrics"].get(M.TEST_EXACT_MATCH), user_attrs={"run_dir": str(r["dir"])}
            )
        )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    study.ask()  # left running
    # A per-arm nuisance-tuning study, as `s2s sweep` makes: in sweep health, never in the results.
    tuning = optuna.create_study(study_name="addition/reversed · tf=1.0", storage=storage)
    tuning.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=0.5,
            user_attrs={"run_dir": str(runs / "rev-tf1-s0")},
        )
    )
    tuning.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    return StudySource("addition", storage_url)


def test_study_source_matches_runs_source(reports, tmp_path):
    readme = build_report(make_study(tmp_path, "sqlite"), tmp_path / "report")
    health = pd.read_csv(tmp_path / "report" / "tables" / "health.csv").set_index("item")
    rows = ["total", "completed", "failed", "pruned", "running", "without a run record"]
    assert health.loc[rows, "Optuna trials"].tolist() == [12, 9, 1, 1, 1, 2]
    assert health.loc[rows, "Tuning trials"].tolist() == [2, 1, 0, 1, 0, 1]
    tuning_wall = json.loads((ADDITION / "rev-tf1-s0" / "record.json").read_text())["wall_time_s"]
    assert health.loc["compute hours (sum of wall_time_s)", "Tuning trials"] == pytest.approx(
        tuning_wall / 3600, abs=1e-3
    )
    from_study = pd.read_csv(tmp_path / "report" / "tables" / "summary.csv")
    from_runs = pd.read_csv(reports["addition"] / "tables" / "summary.csv")
    pd.testing.assert_frame_equal(from_study, from_runs)
    assert "Optuna study 'addition'" in readme.read_text()


def test_study_report_finds_ensembles_of_its_runs_beside_them(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(ADDITION, runs)
    members = [str(runs / f"rev-tf1-s{s}") for s in range(3)]
    # An ensemble saved in the study's runs folder, and one mixing a study run with a stranger.
    write_json(
        runs / "ensembles" / "rev-tf1" / "metrics.json",
        {"beam_size": 3, "split": "test", "members": members, "metrics": {M.TEST_EXACT_MATCH: 0.97}},
    )
    write_json(
        runs / "ensembles" / "mixed" / "metrics.json",
        {
            "beam_size": 3,
            "split": "test",
            "members": [members[0], str(tmp_path / "elsewhere")],
            "metrics": {M.TEST_EXACT_MATCH: 0.5},
        },
    )
    data = load(make_study(tmp_path, "sqlite", runs))
    ensembles = data.evals[data.evals["n_members"] > 1]
    assert ensembles["eval_dir"].tolist() == [str(runs.resolve() / "ensembles" / "rev-tf1")]
    assert ensembles.iloc[0][M.TEST_EXACT_MATCH] == pytest.approx(0.97)
    assert (data.evals["n_members"] == 1).sum() == 9  # every completed run's beam-3 evaluation, as before


def test_study_report_without_any_evaluation(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(ADDITION, runs, ignore=shutil.ignore_patterns("eval"))  # as `make demo` leaves them
    readme = build_report(make_study(tmp_path, "sqlite", runs), tmp_path / "report")
    (tmp_path / "again").mkdir()
    assert len(load(make_study(tmp_path / "again", "journal", runs)).evals) == 0
    assert not (tmp_path / "report" / "tables" / "table1.csv").exists()
    assert "## Results" in readme.read_text()


def test_journal_storage_study(tmp_path):
    data = load(make_study(tmp_path, "journal"))
    grid = data.trials[~data.trials["tuning"]]
    assert len(data.completed) == 9 and (grid["state"] == "COMPLETE").sum() == 9
    assert data.trials.loc[data.trials["tuning"], "study"].unique().tolist() == ["addition/reversed · tf=1.0"]


def test_provenance_flags_runs_from_an_edited_tree(tmp_path):
    import shutil

    for name, dirty in (("fwd-s0", True), ("rev-s0", False)):
        shutil.copytree(TRANSLATION / name, tmp_path / "runs" / name)
        record = json.loads((tmp_path / "runs" / name / "record.json").read_text())
        (tmp_path / "runs" / name / "record.json").write_text(json.dumps({**record, "git_dirty": dirty}))
    text = build_report(tmp_path / "runs", tmp_path / "report", command="s2s report").read_text()
    code = next(line for line in text.splitlines() if line.startswith("- Code: "))
    assert code.count("(2 runs, 1 with uncommitted changes)") == 1, code
    assert "Diffs of the runs from an edited tree" not in text  # these records keep no git.diff
    (tmp_path / "runs" / "fwd-s0" / "git.diff").write_text("diff --git a/x b/x\n")
    text = build_report(tmp_path / "runs", tmp_path / "report", command="s2s report").read_text()
    diffs = next(line for line in text.splitlines() if line.startswith("- Diffs of the runs"))
    assert diffs.endswith("(../runs/fwd-s0/git.diff)"), diffs


def test_ensemble_dir_given_directly_finds_its_members():
    data = load(
        RunsSource((TRANSLATION / "rev-s0", TRANSLATION / "rev-s1", TRANSLATION / "ensemble-rev-beam12"))
    )
    ensemble = data.evals[data.evals["n_members"] == 2].iloc[0]
    assert [Path(r).name for r in ensemble["member_runs"]] == ["rev-s0", "rev-s1"]


# ------------------------------------------------------------------------------------- errors
def test_input_errors_are_one_line_s2s_errors(tmp_path, monkeypatch):
    with pytest.raises(S2SError, match="no run records found"):
        load(RunsSource((tmp_path,)))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "record.json").write_text("{not json")
    with pytest.raises(S2SError, match="not valid JSON"):
        load(RunsSource((bad,)))
    with pytest.raises(S2SError, match="mix tasks"):
        load(RunsSource((ADDITION, TRANSLATION)))
    with pytest.raises(S2SError, match="does not exist"):
        load(StudySource("addition", f"sqlite:///{tmp_path / 'missing.db'}"))
    with pytest.raises(S2SError, match="ENTITY/PROJECT"):
        load(WandbSource("just-a-project"))
    import wandb

    def offline(*args, **kwargs):
        raise ConnectionError("Max retries exceeded\nmore detail")

    monkeypatch.setattr(wandb, "Api", offline)
    with pytest.raises(S2SError, match=r"needs network and `wandb login`\): Max retries exceeded$"):
        load(WandbSource("me/s2s-lightning/addition"))


def test_cli_entry(tmp_path, capsys, monkeypatch):

    monkeypatch.chdir(tmp_path)  # the default journal is relative: never read the checkout's own runs/

    args = build_parser().parse_args(["report", "--study", "addition", "--storage", "x.db", "-o", "out"])
    assert args.study == "addition" and args.storage == "x.db" and args.runs is None
    assert s2s(["report", "--runs", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"s2s: error: {tmp_path / 'nowhere'} does not exist\n"
    # Without --storage, the sweep's default journal (runs/optuna/studies.journal) is read.
    assert s2s(["report", "--study", "addition", "-o", str(tmp_path / "out")]) == 2
    assert "runs/optuna/studies.journal" in capsys.readouterr().err
    assert s2s(["report", "--runs", str(TRANSLATION / "fwd-s0"), "-o", str(tmp_path / "one")]) == 0
    assert "s2s report --runs" in (tmp_path / "one" / "README.md").read_text()


def test_runs_that_differ_beyond_the_declared_axes_are_never_pooled(tmp_path):
    """A 1-epoch run with the same four axis values as a 5-epoch arm is its own arm, named by the key that
    differs, and the README says the key is not a declared axis; runs differing only in the seed and in
    how they ran (W&B names, devices) stay pooled."""
    folder = tmp_path / "runs"
    shutil.copytree(RECORDS / "addition", folder)
    short = folder / "rev-tf1-short"
    shutil.copytree(folder / "rev-tf1-s0", short)
    config = yaml.safe_load((short / "config.yaml").read_text())
    config["train"]["max_epochs"] = 1
    (short / "config.yaml").write_text(yaml.safe_dump(config))
    for run in folder.glob("fwd-tf1-s*"):  # how a run ran is no reason to split an arm
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["tracking"]["name"], config["train"]["accelerator"] = f"name-{run.name}", "cpu"
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    readme = build_report(folder, tmp_path / "report").read_text()
    summary = pd.read_csv(tmp_path / "report" / "tables" / "summary.csv")
    assert list(zip(summary["arm"], summary["n"])) == [
        ("forward · tf=1.0 · max_epochs=5", 3),
        ("reversed · tf=0.5 · max_epochs=5", 3),
        ("reversed · tf=1.0 · max_epochs=1", 1),
        ("reversed · tf=1.0 · max_epochs=5", 3),
    ]
    assert "**Arms vary in**: source order, teacher forcing, max_epochs;" in readme
    assert "- **Not a declared axis**: runs of one arm differed in `train.max_epochs`" in readme


def test_one_column_per_test_set(tmp_path):
    folder = tmp_path / "runs"
    shutil.copytree(RECORDS / "translation", folder)
    for i, run in enumerate(sorted(p for p in folder.iterdir() if (p / "config.yaml").is_file())):
        write_json(
            run / "eval" / "test_2017_flickr_beam1" / "metrics.json",
            {
                "beam_size": 1,
                "split": "test_2017_flickr",
                "members": [str(run)],
                "metrics": {M.TEST_BLEU: 10.0 + i},
            },
        )
    readme = build_report(folder, tmp_path / "report").read_text()
    table = pd.read_csv(tmp_path / "report" / "tables" / "test_sets.csv")
    assert set(table["split"]) == {"test", "test_2017_flickr"} and "## Test sets" in readme
    other = table[table["split"] == "test_2017_flickr"]
    completed = [r for r in records(folder) if r["status"] == "completed"]
    assert other["n"].sum() == len(completed) == table.loc[table["split"] == "test", "n"].sum()


def test_word_f_table_and_figure_from_the_runs_files(tmp_path):
    folder = tmp_path / "runs"
    shutil.copytree(RECORDS / "translation", folder)
    for run in (p for p in folder.iterdir() if (p / "test.hyp.txt").is_file()):
        for kind in ("hyp", "ref"):  # the Moses-tokenized files a translation run writes
            lines = (run / f"test.{kind}.txt").read_text().splitlines()
            tokenized = [" ".join(re.findall(r"\w+|\S", line)) for line in lines]
            (run / f"test.{kind}.tok.txt").write_text("".join(line + "\n" for line in tokenized))
        words = sorted(set((run / "test.ref.tok.txt").read_text().split()))
        counts = {w: 1 + 37 * (i % 3) for i, w in enumerate(words)}  # 1, 38, 75: some words seen once
        write_json(run / "train_counts.json", {"src": {}, "tgt": counts})
    readme = build_report(folder, tmp_path / "report").read_text()
    table = pd.read_csv(tmp_path / "report" / "tables" / "word_f.csv")
    assert set(table["bucket"]) == {"1", "10–99"} and table["f mean"].between(0, 1).all()
    assert "figures/word_f.png" in readme and "Word F-measure by frequency in training" in readme


def test_pooled_randomization_and_holm():
    from s2s_lightning.analysis import SentenceScores, holm, pooled_randomization

    rng = np.random.default_rng(0)
    base = [SentenceScores("exact_match", (rng.random(300) < 0.5).astype(float), None) for _ in range(3)]
    same = [(a, SentenceScores("exact_match", a.scores.copy(), None)) for a in base]
    assert pooled_randomization(same, samples=200) == 1.0  # identical systems: every shuffle ties
    better = [
        (a, SentenceScores("exact_match", np.maximum(a.scores, rng.random(300) < 0.3), None)) for a in base
    ]
    assert pooled_randomization(better, samples=200) == pytest.approx(1 / 201)  # no shuffle reaches the gap
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


@pytest.mark.parametrize("drop_b", [0.27, 0.26])
def test_one_seed_randomization_equals_sacrebleus_paired_ar_within_its_monte_carlo_error(tmp_path, drop_b):
    """The pooled test over one seed is sacreBLEU's --paired-ar (10,000 trials): the p-values agree within
    their Monte Carlo errors. With 1,000 trials from one seed shared by every pair, a Multi30k pair gave
    p = 0.010 where sacreBLEU gave 0.0026."""
    import json
    import random
    import subprocess
    import sys

    from s2s_lightning.analysis import AR_TRIALS, monte_carlo_error, pooled_randomization, sentence_scores

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(300)]
    refs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(6, 16))) for _ in range(400)]

    def noisy(seed, drop):
        g = random.Random(seed)
        return [" ".join(w for w in ref.split() if g.random() > drop) for ref in refs]

    hyp_a, hyp_b = noisy(1, 0.30), noisy(2, drop_b)
    for name, lines in (("ref", refs), ("a", hyp_a), ("b", hyp_b)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    cli = Path(sys.executable).parent / "sacrebleu"
    out = subprocess.run(
        [
            cli,
            tmp_path / "ref.txt",
            "-i",
            tmp_path / "a.txt",
            tmp_path / "b.txt",
            "--paired-ar",
            "-m",
            "bleu",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(out.stdout)[1]["BLEU"]["p_value"]
    ours = pooled_randomization(
        [(sentence_scores("translation", hyp_a, refs), sentence_scores("translation", hyp_b, refs))]
    )
    error = math.hypot(monte_carlo_error(theirs, AR_TRIALS), monte_carlo_error(ours, AR_TRIALS))
    assert 0.001 < theirs < 0.05 and abs(ours - theirs) <= 4 * error, (ours, theirs, error)


def test_each_pair_draws_its_own_shuffles():
    from s2s_lightning.analysis import SentenceScores, pooled_randomization

    rng = np.random.default_rng(1)
    a = SentenceScores("exact_match", (rng.random(400) < 0.5).astype(float), None)
    b = SentenceScores("exact_match", np.where(rng.random(400) < 0.1, 1 - a.scores, a.scores), None)
    p = {stream: pooled_randomization([(a, b)], samples=2000, stream=stream) for stream in range(4)}
    assert (
        len(set(p.values())) > 1
    )  # another stream, other shuffles: the p-values differ in their last digits
    assert max(p.values()) - min(p.values()) < 0.05


def test_pooled_significance_table(reports):
    table = pd.read_csv(reports["addition"] / "tables" / "significance_pooled.csv")
    assert set(table.columns) >= {"delta", "s_dev_a", "s_sel_a", "p_value", "p_holm"}
    assert (table["p_holm"] >= table["p_value"]).all() and table["p_value"].between(0, 1).all()


def test_a_note_goes_under_the_header(tmp_path):
    (tmp_path / "how.md").write_text("Made by `s2s sweep run X` in 75 minutes.\n")
    out = tmp_path / "report"
    note = str(tmp_path / "how.md")
    assert s2s(["report", "--runs", str(TRANSLATION / "fwd-s0"), "-o", str(out), "--note", note]) == 0
    readme = (out / "README.md").read_text()
    assert "## How the runs were made\n\nMade by `s2s sweep run X` in 75 minutes.\n\n## Results" in readme
    assert f"--note {tmp_path / 'how.md'}" in readme


def test_val_curve_columns_share_a_y_range_that_holds_every_column(tmp_path, monkeypatch):
    """Columns of one metric share their y axis, over all columns' data: sharing the first column's range
    cut off a column whose curves went higher (Peeky's validation BLEU on Multi30k)."""
    import s2s_lightning.report.design as design
    import s2s_lightning.report.figures as figures

    data = load(RunsSource((ADDITION,)))
    tf = "train.teacher_forcing_ratio"
    monkeypatch.setattr(
        design, "design_roles", lambda d: {"hue": (tf,), "style": (), "col": ("data.reverse_source",)}
    )
    saved = {}
    monkeypatch.setattr(figures, "save", lambda fig, folder, name: saved.setdefault(name, fig))
    assert figures.val_curves(data, tmp_path) is not None
    axes = [ax for ax in saved["val_curves"].axes if ax.lines]
    assert len(axes) == 4  # 2 metrics x 2 columns
    for ax in axes:
        low, high = ax.get_ylim()
        ys = np.concatenate([line.get_ydata() for line in ax.lines if len(line.get_ydata())])
        ys = ys[np.isfinite(ys)]
        assert low <= ys.min() and ys.max() <= high, (ax.get_ylabel(), (low, high), (ys.min(), ys.max()))


def test_figures_count_epochs_from_one_keep_scores_above_zero_and_colour_arms_by_design(
    tmp_path, monkeypatch
):
    """Three things a reader noticed: validation curves counted epochs from 0 (the logs from 1); a score of
    0 everywhere drew an axis from -0.05; the per-arm figure gave each arm its own colour, meaning
    something else than colour in every other figure (the level of the first varying axis)."""
    from s2s_lightning.report import figures as report_figures

    drawn = {}
    real_save = report_figures.save

    def keep(fig, folder, name):
        drawn[name] = [
            (ax.get_xlim(), ax.get_ylim(), [line.get_xdata() for line in ax.lines]) for ax in fig.axes
        ]
        faces = [coll.get_facecolors()[:, :3].round(4) for ax in fig.axes for coll in ax.collections]
        drawn[name + ":colours"] = [tuple(c) for face in faces for c in face]
        real_save(fig, folder, name)

    monkeypatch.setattr(report_figures, "save", keep)
    build_report(ADDITION, tmp_path / "r", command="s2s report")
    xs = [x for _, _, lines in drawn["val_curves"] for line in lines for x in line]
    assert xs and min(xs) == 1
    task_row = drawn["val_curves"][len(drawn["val_curves"]) // 2 :]  # rows: perplexity, then exact match
    assert task_row and all(ylim[0] == 0 for _, ylim, _ in task_row)
    assert all(xlim[0] == 0 for xlim, _, _ in drawn["test_exact_match"][:1])
    data = load(RunsSource((ADDITION,)))
    design = report_figures.Design.of(data, list(data.arms))
    expected = {tuple(np.round(matplotlib.colors.to_rgb(design.colour(arm)), 4)) for arm in data.arms}
    assert set(drawn["test_exact_match:colours"]) <= expected


def test_a_report_is_titled_by_its_study(tmp_path):
    """The title came from the output folder's name ("Report: addition-quick") even for one study's runs."""
    runs = tmp_path / "runs"
    shutil.copytree(ADDITION, runs)
    for path in runs.glob("*/record.json"):
        write_json(path, json.loads(path.read_text()) | {"study": "addition-quick"})
    readme = build_report(runs, tmp_path / "out", command="s2s report")
    assert readme.read_text().startswith("# Report: study addition-quick\n")
    assert (
        build_report(ADDITION, tmp_path / "plain", command="s2s report")
        .read_text()
        .startswith("# Report: plain\n")
    )


def test_a_report_of_runs_none_of_which_completed_says_so(tmp_path, capsys):
    """It said `--metric test/exact_match: no completed run records it (recorded: )`, no --metric given."""
    import json
    import shutil

    from s2s_lightning.cli import main as s2s

    for name in ("fwd-tf1-s0", "rev-tf1-s0"):
        run = tmp_path / "runs" / name
        shutil.copytree(RECORDS / "addition" / name, run)
        record = json.loads((run / "record.json").read_text())
        (run / "record.json").write_text(json.dumps({**record, "status": "failed", "metrics": {}}))
    assert s2s(["report", "--runs", str(tmp_path / "runs"), "-o", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["s2s: error: no run completed (2 failed): a report needs at least one completed run"]
    assert not (tmp_path / "report").exists()


def test_a_report_folder_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    """`report -o FILE` raised NotADirectoryError."""
    from s2s_lightning.cli import main as s2s

    (tmp_path / "taken").write_text("a file\n")
    assert s2s(["report", "--runs", str(RECORDS / "addition"), "-o", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"s2s: error: -o {tmp_path / 'taken'} is a file, not a folder: name a folder for the report"
    ]


def test_captions_say_what_the_figure_holds(tmp_path):
    """One seed per arm: the captions said "diamonds and bars: mean ± 1 sd" and "band of ± 1 sd" over
    figures with neither. With seeds, a bar of a proportion stops at 0 and 1, and the caption says so."""
    one = [ADDITION / name for name in ("fwd-tf1-s0", "rev-tf1-s0", "rev-tf0.5-s0")]
    readme = build_report(one, tmp_path / "one").read_text()
    assert "one seed per arm, so the diamond is that run (no bar" in readme
    assert "one seed per arm (no band" in readme and "band of ± 1 sd" not in readme
    readme = build_report(ADDITION, tmp_path / "all").read_text()
    assert "diamonds and bars: mean ± 1 sd over seeds, cut at the metric's range (0 to 1)" in readme
    assert "mean over seeds with a band of ± 1 sd" in readme


def test_a_report_rebuilds_from_its_saved_records_and_bad_archives_are_one_line(
    tmp_path, monkeypatch, capsys
):
    """--save-records keeps what the report read (no checkpoints) in OUT/records.tar.gz, the same bytes
    for the same records; --records builds the same report from it, the runs folder gone."""
    import tarfile

    monkeypatch.chdir(tmp_path)
    shutil.copytree(TRANSLATION, "runs")
    (tmp_path / "runs" / "fwd-s0" / "checkpoints").mkdir()
    (tmp_path / "runs" / "fwd-s0" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    assert s2s(["report", "--runs", "runs", "-o", "first", "--save-records"]) == 0
    with tarfile.open("first/records.tar.gz") as tar:
        names = tar.getnames()
    assert "runs/fwd-s0/record.json" in names and "runs/fwd-s0/test.hyp.txt" in names
    assert not [n for n in names if "checkpoints" in n or n.startswith("/")]
    shutil.rmtree("runs")
    assert (
        s2s(
            ["report", "--records", "first/records.tar.gz", "--runs", "runs", "-o", "again", "--save-records"]
        )
        == 0
    )
    assert (tmp_path / "again" / "records.tar.gz").read_bytes() == (
        tmp_path / "first" / "records.tar.gz"
    ).read_bytes()
    for table in (tmp_path / "first" / "tables").iterdir():
        assert (tmp_path / "again" / "tables" / table.name).read_bytes() == table.read_bytes(), table.name
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar")
    for args, error in [
        (["nothing.tar.gz", "--runs", "runs"], "--records nothing.tar.gz not found"),
        (["broken.tar.gz", "--runs", "runs"], "--records broken.tar.gz is not a readable records archive"),
        (["first/records.tar.gz", "--runs", str(tmp_path / "runs")], "is absolute; name paths as they are"),
    ]:
        assert s2s(["report", "--records", *args, "-o", "x"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and error in err, err


def _wsgi_get(app, path: str) -> tuple[str, bytes]:
    from wsgiref.util import setup_testing_defaults

    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


def test_the_optuna_dashboard_shows_the_reports_findings_and_files(tmp_path, capsys):
    """After `s2s report --study`, optuna-dashboard's own app (WSGI, no server) returns the study's note
    (the report's Findings) and the report's page as an artifact; making the report again uploads
    nothing new."""
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    import optuna
    from optuna.artifacts import FileSystemArtifactStore

    from s2s_lightning.sweep.storage import artifact_dir, open_storage

    source = make_study(tmp_path, "journal")
    args = ["report", "--study", "addition", "--storage", source.storage, "-o", str(tmp_path / "out")]
    assert s2s(args) == 0
    assert "note set to the report's Findings" in capsys.readouterr().out
    store = artifact_dir(source.storage)
    backend = open_storage(source.storage, create=False)
    app = optuna_dashboard.wsgi(backend, artifact_store=FileSystemArtifactStore(str(store)))
    study = optuna.load_study(study_name="addition", storage=backend)
    status, body = _wsgi_get(app, f"/api/studies/{study._study_id}")
    note = json.loads(body)["note"]["body"]
    findings = (tmp_path / "out" / "README.md").read_text().split("## Findings\n\n")[1].split("\n\n")[0]
    assert status.startswith("200") and findings in note
    digest, artifact = study.user_attrs["report_artifacts"]["report.html"]
    status, body = _wsgi_get(app, f"/artifacts/{study._study_id}/{artifact}")
    assert status.startswith("200") and body == (tmp_path / "out" / "report.html").read_bytes()
    assert s2s(args) == 0
    assert "0 of" in capsys.readouterr().out  # the same files: nothing uploaded again


def test_pca_panels_keep_each_arms_colour_of_every_other_figure(tmp_path, monkeypatch):
    """The addition report's PCA panels (both reversed arms) were drawn in the colour of the first level
    (forward's blue) because the colours were worked out from the panels' arms alone."""
    import matplotlib.colors

    import s2s_lightning.report.figures as figures
    from s2s_lightning.report.design import Design, present

    data = load(RunsSource((TRANSLATION,)))
    forward = [a for a in data.arms if data.arm_axes[a]["data.reverse_source"] is False]
    drop = data.runs["arm"].isin(forward)
    data.runs.loc[drop, "representations"] = None  # only the reversed arm has encoder vectors
    saved = {}
    monkeypatch.setattr(figures, "save", lambda fig, folder, name: saved.update({name: fig}))
    assert figures.representations(data, tmp_path) is not None
    (ax,) = saved["representations"].axes
    design = Design.of(data, present(data, data.completed))
    reversed_arm = next(a for a in data.arms if a not in forward)
    assert matplotlib.colors.same_color(ax.title.get_color(), design.colour(reversed_arm))
    assert not matplotlib.colors.same_color(ax.title.get_color(), design.colour(forward[0]))
