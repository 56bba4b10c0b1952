#!/bin/bash
# The [gpu] measurements in one command, on one GPU node (tutorial configuration: Multi30k de->en,
# embedding 256, hidden 512, 2 layers, batch 128). Writes everything under OUT and prints a summary.
#
#   S2S_MULTI30K_DIR=path/to/multi30k bash sweeps/gpu/measure.sh OUT [K]
#
# 1. s2s bench at fp32 and bf16-mixed (with --profile): target tokens/s, seconds per epoch, peak memory,
#    beam-12 sentences/s; 2. the same seed trained 3 epochs at fp32 and at bf16-mixed: validation
#    perplexity must agree within 1%; 3. the Multi30k quick-budget study with 1 and with K trials per GPU
#    (default K=4): wall time of each, and the trials-per-hour ratio (target: at least 0.8 x K).
set -euo pipefail
OUT=${1:?usage: measure.sh OUT [K]}
K=${2:-4}
: "${S2S_MULTI30K_DIR:?set S2S_MULTI30K_DIR to a Multi30k folder (train/val/test_2016_flickr .de/.en)}"
mkdir -p "$OUT"
TUTORIAL=(data.name=multi30k model.embedding_dim=256 model.hidden_dim=512 model.num_layers=2 data.batch_size=128)

for precision in 32-true bf16-mixed; do
  s2s bench --device cuda --steps 50 --warmup 10 --sentences 1000 --json --profile \
      "${TUTORIAL[@]}" train.precision=$precision > "$OUT/bench-$precision.json"
done

for precision in 32-true bf16-mixed; do
  s2s train --run-dir "$OUT/runs/tutorial-$precision" "${TUTORIAL[@]}" train.precision=$precision \
      train.max_epochs=3 train.accelerator=gpu tracking.wandb=disabled seed=0 > "$OUT/train-$precision.log" 2>&1
done

start=$(date +%s)
s2s sweep run ablations/paper_multi30k.yaml --budget quick --gpus all --runs-dir "$OUT/runs/k1" > "$OUT/sweep-k1.log" 2>&1
k1=$(( $(date +%s) - start ))
start=$(date +%s)
s2s sweep run ablations/paper_multi30k.yaml --budget quick --gpus all --trials-per-gpu "$K" \
    --runs-dir "$OUT/runs/k$K" > "$OUT/sweep-k$K.log" 2>&1
kk=$(( $(date +%s) - start ))

python - "$OUT" "$K" "$k1" "$kk" <<'PY' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
out, k, k1, kk = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for p in ("32-true", "bf16-mixed"):
    b = json.loads((out / f"bench-{p}.json").read_text())
    t = b["train"]["tf1"]
    print(f"{p}: train {t['tgt_tokens_per_s']:,.0f} target tok/s, {29000 / t['sentences_per_s']:.1f} s/epoch "
          f"(29,000 pairs), beam-12 {b['decode']['beam12']['sentences_per_s']:.0f} sent/s, "
          f"peak {b['peak_memory_mb']:,.0f} MiB; top op {b['profile'][0]['op']} ({b['profile'][0]['share']:.0%})")
ppl = {p: json.loads((out / f"runs/tutorial-{p}/record.json").read_text())["metrics"]["val/ppl"]
       for p in ("32-true", "bf16-mixed")}
gap = ppl["bf16-mixed"] / ppl["32-true"] - 1
print(f"val ppl after 3 epochs: fp32 {ppl['32-true']:.3f}, bf16 {ppl['bf16-mixed']:.3f} ({gap:+.2%}; target within 1%)")
print(f"quick study: {k1} s with 1 trial per GPU, {kk} s with {k}: {k1 / kk:.2f}x trials per hour "
      f"(target at least {0.8 * k:.1f}x)")
PY
