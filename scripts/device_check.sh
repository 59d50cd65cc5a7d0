#!/usr/bin/env bash
# The accelerator check of the `paper` MaskGAN config, run once on a lent GPU machine:
# the benchmark suite `accelerator` (matmul roofline, paper generator and WGAN-GP step with
# FLOP fractions, mel throughput), then 20 real training steps of the paper config with a
# checkpoint through experiments.train_maskgan. Uses the machine's own python3 (jax, flax,
# optax, orbax already installed there) with this checkout on PYTHONPATH.
# Everything is written under $OUT (default out/device): gpu.txt, bench.jsonl, bench.log,
# train.log, metrics.jsonl, and the run's scratch folder $OUT/work (compile cache, checkpoints).
set -u
OUT=${OUT:-out/device}
mkdir -p "$OUT/work"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR="$OUT/work/jax-cache"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, flax, optax, orbax.checkpoint; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
timeout "${BENCH_TIMEOUT:-330}" python3 -m experiments.bench --only=accelerator --out="$OUT/bench.jsonl" 2>&1 | tee "$OUT/bench.log"
workdir=$(mktemp -d "$OUT/work/paper.XXXXXX")
timeout "${TRAIN_TIMEOUT:-150}" python3 -m experiments.train_maskgan --config=paper --steps=20 --log_every=5 \
    --checkpoint_every=20 --workdir="$workdir" 2>&1 | tail -n 60 | tee "$OUT/train.log"
cp "$workdir/metrics.jsonl" "$OUT/" 2>/dev/null
ls -la "$workdir/checkpoints" 2>/dev/null | tee -a "$OUT/train.log"
