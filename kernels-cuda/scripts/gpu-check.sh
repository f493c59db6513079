#!/usr/bin/env bash
# The CUDA backend's verification and benchmark in one command, for a machine with a GPU.
#
#   kernels-cuda/scripts/gpu-check.sh          build (needs cargo + nvcc 13.0), then run
#   kernels-cuda/scripts/gpu-check.sh build    build only: test binaries and gptoss into .gpu-check/
#   kernels-cuda/scripts/gpu-check.sh run      run only, from .gpu-check/ (a GPU machine without cargo)
#
# .gpu-check/ is git-ignored (~41 MB of stripped x86-64 binaries): build it on a machine with
# cargo, then carry it to the GPU machine along with the working tree.
#
# Run: every CUDA kernel test against the CPU backend, the whole model against the CPU
# (fixture: logits + 64 greedy tokens; synthetic 20b and 120b: logits), compute-sanitizer
# memcheck and racecheck on the kernel tests, every prefill kernel variant side by side (time,
# TFLOP/s, share of the tensor-core peak) and the GEMV / tensor-core crossover, then `gptoss bench` on synthetic 20b and 120b
# (decode, 2048-token prefill, the device's copy bandwidth, per-op times), and 120b with its
# experts in host memory (`--offload host` under a 24 GiB budget, `--cpu-experts`). Results:
# bench/results/<date>-cuda-<gpu>{.md,-checks.json,-bench.json} (and $OUT when set). Exit status: non-zero if any check failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
STAGE=$ROOT/.gpu-check
MODE=${1:-all}

build() {
    set -e
    mkdir -p "$STAGE"
    local json
    json=$(cargo test --release --features cuda --no-run --message-format=json -p gptoss-op-tests --test cuda_gpu 2>/dev/null;
           cargo test --release --features cuda --no-run --message-format=json --test cuda_backend 2>/dev/null;
           cargo test --release --features cuda --no-run --message-format=json --test cuda_offload 2>/dev/null)
    echo "$json" | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], sys.argv[1] + "/test-" + m["target"]["name"])
' "$STAGE"
    cargo build --release --features cuda
    cp target/release/gptoss "$STAGE/gptoss"
    cargo build --release -p gptoss-bench --features cuda --example cuda_variants
    cp target/release/examples/cuda_variants "$STAGE/cuda_variants"
    strip "$STAGE"/* 2>/dev/null || true
    du -sh "$STAGE"
    set +e
}

# 120b under a 24 GiB share of the GPU with every expert in pinned host memory read in place
# and the hot ones in device slots, then with the experts on the CPU; uniform and skewed routing.
offload_runs() {
    local m
    for m in synthetic:120b 'synthetic:120b?routing=skewed'; do
        "$STAGE/gptoss" generate --backend cuda --model "$m" --offload host --memory-budget 24GiB \
            --prompt-tokens 1,2,3,4,5,6,7,8 --max-tokens 64 || return 1
        "$STAGE/gptoss" generate --backend cuda --model "$m" --cpu-experts --prompt-tokens 1,2,3,4,5,6,7,8 --max-tokens 32 || return 1
    done
}

FAILED=()
step() {  # step NAME COMMAND...: runs, logs, records failure
    local name=$1; shift
    echo "== $name"
    if "$@" 2>&1 | tee "$LOGS/$name.log"; then echo "-- $name: ok"; else echo "-- $name: FAILED"; FAILED+=("$name"); fi
}

run() {
    [ -x "$STAGE/test-cuda_gpu" ] || { echo "no $STAGE/test-cuda_gpu: run '$0 build' first (on a machine with cargo)"; exit 2; }
    nvidia-smi > /dev/null 2>&1 || { echo "no GPU here (nvidia-smi fails): the device tests would only skip"; exit 2; }
    export GPTOSS_REPO_DIR=$ROOT
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr ' ' '-' || echo unknown)
    DATE=$(date -u +%Y-%m-%dT%H%M)
    LOGS=${OUT:-$ROOT/.gpu-check}/logs; mkdir -p "$LOGS"
    nvidia-smi || true

    export GPTOSS_REQUIRE_GPU=1
    step kernel-tests "$STAGE/test-cuda_gpu" --test-threads=1 --nocapture
    step model-tests "$STAGE/test-cuda_backend" --test-threads=1 --nocapture --include-ignored
    step residency-tests "$STAGE/test-cuda_offload" --test-threads=1 --nocapture
    step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 "$STAGE/test-cuda_gpu" --test-threads=1
    step racecheck compute-sanitizer --tool racecheck --error-exitcode 1 "$STAGE/test-cuda_gpu" --test-threads=1

    mkdir -p bench/results
    local base=bench/results/$DATE-cuda-$GPU
    # Every kernel variant of the prefill ops at 20b's shapes, 2048 tokens, and the measured
    # GEMV / tensor-core crossover.
    step variants "$STAGE/cuda_variants" --tokens 2048 --reps 20
    # Decode at depth 0 and 4096, prefill of 2048 tokens in one batch, the device's copy
    # bandwidth measured in the same run, and the per-op breakdown of a decode step.
    step bench "$STAGE/gptoss" bench --backend cuda --model synthetic:20b --model synthetic:120b \
        -p 2048 --batch 2048 -n 256 --depth 0,4096 --markdown --json "$base-bench.json"

    step offload offload_runs

    python3 - "$LOGS" "$base" "$GPU" "${FAILED[*]:-}" <<'PY'
import json, pathlib, sys
logs, base, gpu, failed = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split()
checks = {n: (n not in failed) for n in ("kernel-tests", "model-tests", "residency-tests", "memcheck", "racecheck", "variants", "bench", "offload")}
pathlib.Path(base + "-checks.json").write_text(json.dumps({"gpu": gpu, "checks": checks}, indent=2) + "\n")
bench = (logs / "bench.log").read_text() if (logs / "bench.log").exists() else "(no bench output)"
md = [f"# CUDA check on {gpu}", "", "| check | result |", "|---|---|"]
md += [f"| {k} | {'pass' if v else 'FAIL'} |" for k, v in checks.items()]
variants = (logs / "variants.log").read_text() if (logs / "variants.log").exists() else "(no variants output)"
md += ["", "## Kernel variants (bench/examples/cuda_variants.rs)", "", variants]
md += ["", "## Benchmark (gptoss bench)", "", bench]
offload = (logs / "offload.log").read_text() if (logs / "offload.log").exists() else "(no offload output)"
md += ["", "## 120b with experts in host memory (--offload host, --cpu-experts)", "", offload]
pathlib.Path(base + ".md").write_text("\n".join(md) + "\n")
print("\n".join(md[:8]))
PY
    [ -n "${OUT:-}" ] && cp "$base"* "$OUT"/ 2>/dev/null
    if [ ${#FAILED[@]} -gt 0 ]; then echo "FAILED: ${FAILED[*]}"; exit 1; fi
    echo "all CUDA checks passed"
}

case "$MODE" in
    build) build ;;
    run) run ;;
    all) build && run ;;
    *) echo "usage: $0 [build|run]"; exit 2 ;;
esac
