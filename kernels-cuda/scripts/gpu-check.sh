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
# memcheck and racecheck on the kernel tests, the device's copy bandwidth, then decode and
# prefill throughput of synthetic 20b and 120b. Results: bench/results/<date>-cuda-<gpu>.{json,md}
# (and $OUT when set). Exit status: non-zero if any check failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
STAGE=$ROOT/.gpu-check
MODE=${1:-all}

build() {
    set -e
    mkdir -p "$STAGE"
    local json
    json=$(cargo test --release --features cuda --no-run --message-format=json -p gptoss-kernels-cuda --test ops 2>/dev/null;
           cargo test --release --features cuda --no-run --message-format=json --test cuda_backend 2>/dev/null)
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
    strip "$STAGE"/* 2>/dev/null || true
    du -sh "$STAGE"
    set +e
}

FAILED=()
step() {  # step NAME COMMAND...: runs, logs, records failure
    local name=$1; shift
    echo "== $name"
    if "$@" 2>&1 | tee "$LOGS/$name.log"; then echo "-- $name: ok"; else echo "-- $name: FAILED"; FAILED+=("$name"); fi
}

run() {
    [ -x "$STAGE/test-ops" ] || { echo "no $STAGE/test-ops: run '$0 build' first (on a machine with cargo)"; exit 2; }
    nvidia-smi > /dev/null 2>&1 || { echo "no GPU here (nvidia-smi fails): the device tests would only skip"; exit 2; }
    export GPTOSS_REPO_DIR=$ROOT
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr ' ' '-' || echo unknown)
    DATE=$(date -u +%Y-%m-%dT%H%M)
    LOGS=${OUT:-$ROOT/.gpu-check}/logs; mkdir -p "$LOGS"
    nvidia-smi || true

    step kernel-tests "$STAGE/test-ops" --test-threads=1 --nocapture
    step model-tests "$STAGE/test-cuda_backend" --test-threads=1 --nocapture --include-ignored
    step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 "$STAGE/test-ops" --test-threads=1
    step racecheck compute-sanitizer --tool racecheck --error-exitcode 1 "$STAGE/test-ops" --test-threads=1

    step copy-bandwidth python3 - <<'PY'
import torch
n = 1 << 30  # 1 GiB each way
a = torch.empty(n, dtype=torch.uint8, device="cuda"); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(20): b.copy_(a)
e.record(); torch.cuda.synchronize()
ms = s.elapsed_time(e) / 20
print(f"copy_bandwidth_gb_s {2 * n / ms / 1e6:.1f}  (bytes read + written, 1 GiB buffers, mean of 20)")
PY

    PROMPT=$(python3 -c 'print(",".join(str((i * 7919) % 200000) for i in range(2048)))')
    for model in 20b 120b; do
        step "decode-$model" "$STAGE/gptoss" generate --model synthetic:$model --backend cuda --prompt-tokens 1,2,3,4 \
            --max-tokens 256 --temperature 0 --stop-tokens 201087
        step "prefill-$model" "$STAGE/gptoss" generate --model synthetic:$model --backend cuda --batch 2048 \
            --prompt-tokens "$PROMPT" --max-tokens 1 --temperature 0 --stop-tokens 201087
    done

    mkdir -p bench/results
    local base=bench/results/$DATE-cuda-$GPU
    python3 - "$LOGS" "$base" "$GPU" "${FAILED[*]:-}" <<'PY'
import json, pathlib, re, sys
logs, base, gpu, failed = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split()
def grab(name, pat):
    p = logs / f"{name}.log"
    m = re.search(pat, p.read_text()) if p.exists() else None
    return float(m.group(1)) if m else None
peak = grab("copy-bandwidth", r"copy_bandwidth_gb_s ([\d.]+)")
rows = []
for model, gb in (("20b", 3.70), ("120b", 5.0)):
    tg = grab(f"decode-{model}", r"decode ([\d.]+) tok/s")
    pp = grab(f"prefill-{model}", r"prefill ([\d.]+) tok/s")
    gbs = tg * gb if tg else None
    rows.append({"model": f"synthetic:{model}", "backend": "cuda", "isa_or_device": gpu, "weights": "native",
                 "prompt_tokens": 2048, "gen_tokens": 256, "depth": 0, "pp_tok_s": pp, "tg_tok_s": tg,
                 "bytes_per_token": gb * 1e9, "gb_s": gbs, "peak_gb_s": peak,
                 "pct_of_peak": 100 * gbs / peak if gbs and peak else None})
checks = {n: (n not in failed) for n in ("kernel-tests", "model-tests", "memcheck", "racecheck")}
pathlib.Path(base + ".json").write_text(json.dumps({"machine": {"gpu": gpu}, "checks": checks, "rows": rows}, indent=2) + "\n")
md = [f"# CUDA check on {gpu}", "", "| check | result |", "|---|---|"]
md += [f"| {k} | {'pass' if v else 'FAIL'} |" for k, v in checks.items()]
md += ["", f"Copy bandwidth (read + write): {peak} GB/s", "",
       "| model | decode tok/s | GB/s | % of copy bw | prefill tok/s (2048) |", "|---|---|---|---|---|"]
for r in rows:
    md.append(f"| {r['model']} | {r['tg_tok_s']} | {r['gb_s'] and round(r['gb_s'], 1)} | "
              f"{r['pct_of_peak'] and round(r['pct_of_peak'], 1)} | {r['pp_tok_s']} |")
pathlib.Path(base + ".md").write_text("\n".join(md) + "\n")
print("\n".join(md))
PY
    [ -n "${OUT:-}" ] && cp "$base".json "$base".md "$OUT"/ 2>/dev/null
    if [ ${#FAILED[@]} -gt 0 ]; then echo "FAILED: ${FAILED[*]}"; exit 1; fi
    echo "all CUDA checks passed"
}

case "$MODE" in
    build) build ;;
    run) run ;;
    all) build && run ;;
    *) echo "usage: $0 [build|run]"; exit 2 ;;
esac
