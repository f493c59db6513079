#!/usr/bin/env bash
# llama.cpp next to gptoss on the same machine, on a GGUF converted from gptoss's own synthetic
# gpt-oss-20b (same shapes, the official GGUF's tensor types: f32 norms/biases, q8_0 attention
# and unembedding, mxfp4 experts). Everything lands under $WORK (default
# ~/.cache/gptoss/llamacpp); nothing of llama.cpp enters this repository.
#
#   bench/llamacpp.sh setup      # llama.cpp from the llama-cpp-python sdist, built for this CPU;
#                                # a venv with its converter's requirements
#   bench/llamacpp.sh convert    # gptoss synth --preset 20b, then convert_hf_to_gguf.py
#   bench/llamacpp.sh run [N]    # N alternations (default 2) of llama-bench and gptoss bench,
#                                # page cache dropped before each, the load average logged
#                                # around each; logs in $WORK/runs
#   bench/llamacpp.sh clean      # removes the synthetic directory and the GGUF (~25 GB)
#
# Needs: python3 with venv, a C/C++ compiler, ~30 GB free under $WORK, root for dropping the
# page cache (skipped otherwise). GPTOSS (default: target/release/gptoss) is the binary timed.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK="${WORK:-$HOME/.cache/gptoss/llamacpp}"
VERSION="${LLAMA_CPP_PYTHON:-0.3.36}" # vendors llama.cpp/ggml commit 0c1e570
GPTOSS="${GPTOSS:-$PWD/target/release/gptoss}"
THREADS="${THREADS:-$(nproc)}"
LC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
SYNTH="$WORK/synth-20b"
GGUF="$WORK/synth-20b.gguf"
mkdir -p "$WORK"

drop_caches() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}

setup() {
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q cmake ninja
    # The sdist only (its build dependencies as wheels): it vendors llama.cpp's source.
    "$WORK/venv/bin/pip" download -q --no-binary llama-cpp-python --no-deps "llama-cpp-python==$VERSION" -d "$WORK"
    tar xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
    # AVX-512 with every extension ggml uses, but not AMX: -march=native turns AMX on where
    # the CPU reports it, and a virtual machine that reports AMX without enabling its register
    # state dies on the first ldtilecfg (SIGILL).
    PATH="$WORK/venv/bin:$PATH" cmake -S "$LC" -B "$LC/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
        -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF
    PATH="$WORK/venv/bin:$PATH" cmake --build "$LC/build" -j "$THREADS" --target llama-bench
    # The converter's requirements (llama.cpp's requirements-convert_hf_to_gguf.txt; torch from
    # PyPI), and its own gguf-py.
    python3 -m venv "$WORK/venv-convert"
    "$WORK/venv-convert/bin/pip" install -q torch==2.11.0 "numpy~=2.2.6" "sentencepiece>=0.1.98,<0.3.0" \
        transformers==4.57.6 "protobuf>=4.21.0,<5.0.0"
    "$WORK/venv-convert/bin/pip" install -q "$LC/gguf-py"
}

convert() {
    "$GPTOSS" synth --preset 20b --out "$SYNTH"
    # Two things in this checkpoint the converter rejects, patched in the scratch copy:
    # integers written as floats in config.json (4096.0), and id 200018 named twice in
    # tokenizer.json's added tokens (<|endofprompt|> and <|reserved_200018|>; transformers then
    # appends one as id 201088, past the vocabulary).
    "$WORK/venv-convert/bin/python" - "$SYNTH" <<'EOF'
import json, sys
d = sys.argv[1]
def ints(v):
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return int(v)
    if isinstance(v, dict):
        return {k: ints(x) for k, x in v.items()}
    if isinstance(v, list):
        return [ints(x) for x in v]
    return v
c = json.load(open(f"{d}/config.json"))
c = {k: (v if k in ("rms_norm_eps",) else ints(v)) for k, v in c.items()}
json.dump(c, open(f"{d}/config.json", "w"), indent=2)
t = json.load(open(f"{d}/tokenizer.json"))
seen, kept = set(), []
for a in t["added_tokens"]:
    if a["id"] in seen:
        continue
    seen.add(a["id"])
    kept.append(a)
t["added_tokens"] = [a for a in kept if not (a["id"] == 200018 and a["content"].startswith("<|reserved"))]
json.dump(t, open(f"{d}/tokenizer.json", "w"))
EOF
    "$WORK/venv-convert/bin/python" "$LC/convert_hf_to_gguf.py" "$SYNTH" --outfile "$GGUF" --outtype q8_0
}

run() {
    local n="${1:-2}"
    mkdir -p "$WORK/runs"
    for i in $(seq 1 "$n"); do
        local stamp
        stamp="$(date +%Y%m%d-%H%M%S)"
        # The machine may be shared: the load average around each run says how much.
        drop_caches
        echo "llama.cpp before: $(cat /proc/loadavg)" | tee -a "$WORK/runs/$stamp-load.txt"
        "$GPTOSS" bench --peak-only | tee "$WORK/runs/$stamp-peak-a.txt"
        "$LC/build/bin/llama-bench" -m "$GGUF" -t "$THREADS" -p 512 -n 64 -r 2 -o md | tee "$WORK/runs/$stamp-llamacpp.md"
        echo "llama.cpp after: $(cat /proc/loadavg)" | tee -a "$WORK/runs/$stamp-load.txt"
        drop_caches
        echo "gptoss before: $(cat /proc/loadavg)" | tee -a "$WORK/runs/$stamp-load.txt"
        "$GPTOSS" bench --peak-only | tee "$WORK/runs/$stamp-peak-b.txt"
        "$GPTOSS" bench --model synthetic:20b --weights int8 --cpu-activations int8 -p 512 --batch 512 -n 64 \
            --repetitions 2 --profile-tokens 8 --markdown --json "$WORK/runs/$stamp-gptoss.json" | tee "$WORK/runs/$stamp-gptoss.md"
        echo "gptoss after: $(cat /proc/loadavg)" | tee -a "$WORK/runs/$stamp-load.txt"
    done
}

clean() {
    rm -rf "$SYNTH" "$GGUF"
}

"${1:?usage: bench/llamacpp.sh setup|convert|run [N]|clean}" "${@:2}"
