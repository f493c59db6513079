#!/usr/bin/env python3
"""Build the gpt-oss reference fixture.

1. Writes a small random gpt-oss checkpoint in the exact Hugging Face layout (config.json,
   three safetensors shards + model.safetensors.index.json, MXFP4 experts, BF16 elsewhere)
   to tests/reference/fixture/.
2. Loads it with transformers' GptOssForCausalLM in float32 with eager attention, checks that
   every loaded parameter equals our own float32 dequantization exactly, and records the
   per-layer activations with forward hooks into tests/reference/expected.safetensors.
3. Recomputes everything with an independent float64 numpy implementation of the spec and
   prints the relative error per layer (and how far a list of known implementation mistakes
   would move the logits, to show that the fixture detects each of them).

Every feature the engine must get right is asserted to be exercised. Deterministic: the
checkpoint bytes depend only on SEED and the pinned numpy/torch/safetensors versions.

Usage: python make_fixture.py [--out-dir DIR]   (DIR defaults to this script's directory)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch

SEED = 20250805

# ---------------------------------------------------------------------------------------------
# Model shape
# ---------------------------------------------------------------------------------------------
H = 64  # hidden_size
I = 64  # intermediate_size (per expert)
D = 16  # head_dim
NH = 4  # num_attention_heads
G = 2  # num_key_value_heads
L = 4  # num_hidden_layers (even: sliding, odd: full)
E = 8  # num_local_experts
K = 4  # num_experts_per_tok
V = 512  # vocab_size
WINDOW = 8  # sliding_window
T = 32  # tokens in the test sequence
THETA = 150000.0
LIMIT = 7.0  # swiglu_limit
ALPHA = 1.702
EPS = 1e-5
ROPE_SCALING = {
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "factor": 32.0,
    "original_max_position_embeddings": 4096,
    "rope_type": "yarn",
    "truncate": False,
}
LAYER_TYPES = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)]
SHARDS = 3

# FP4 (E2M1) code -> value; code 8 is -0.0.
FP4 = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
    dtype=np.float32,
)

# E8M0 scale bytes drawn per 32-element block (value 2^(byte-127)). Chosen so that the
# gate/up pre-activations regularly exceed the +-7 clamps while the residual stays O(1..10).
GATE_UP_SCALES = np.arange(121, 126, dtype=np.uint8)  # 2^-6 .. 2^-2
DOWN_SCALES = np.arange(117, 122, dtype=np.uint8)  # 2^-10 .. 2^-6


def config_json() -> dict:
    """config.json with the same keys and spelling as the published gpt-oss checkpoints."""
    return {
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": V - 2,
        "experts_per_token": K,
        "head_dim": D,
        "hidden_act": "silu",
        "hidden_size": H,
        "initial_context_length": ROPE_SCALING["original_max_position_embeddings"],
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_types": LAYER_TYPES,
        "max_position_embeddings": 131072,
        "model_type": "gpt_oss",
        "num_attention_heads": NH,
        "num_experts_per_tok": K,
        "num_hidden_layers": L,
        "num_key_value_heads": G,
        "num_local_experts": E,
        "output_router_logits": False,
        "pad_token_id": V - 3,
        "quantization_config": {
            "modules_to_not_convert": [
                "model.layers.*.self_attn",
                "model.layers.*.mlp.router",
                "model.embed_tokens",
                "lm_head",
            ],
            "quant_method": "mxfp4",
        },
        "rms_norm_eps": EPS,
        "rope_scaling": ROPE_SCALING,
        "rope_theta": int(THETA),
        "router_aux_loss_coef": 0.9,
        "sliding_window": WINDOW,
        "swiglu_limit": LIMIT,
        "tie_word_embeddings": False,
        "transformers_version": transformers.__version__,
        "use_cache": True,
        "vocab_size": V,
    }


# ---------------------------------------------------------------------------------------------
# Random checkpoint
# ---------------------------------------------------------------------------------------------
def bf16(a: np.ndarray) -> torch.Tensor:
    """float -> BF16 tensor (round to nearest even)."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.bfloat16)


def mxfp4(rng: np.random.RandomState, rows: int, cols: int, scale_choices: np.ndarray):
    """Random MXFP4 matrix [E, rows, cols]: (blocks [E,rows,cols/32,16], scales [E,rows,cols/32])."""
    codes = rng.randint(0, 16, size=(E, rows, cols)).astype(np.uint8)
    scales = rng.choice(scale_choices, size=(E, rows, cols // 32)).astype(np.uint8)
    c = codes.reshape(E, rows, cols // 32, 32)
    blocks = (c[..., 0::2] | (c[..., 1::2] << 4)).astype(np.uint8)  # low nibble = even element
    return blocks, scales


def build_checkpoint(rng: np.random.RandomState) -> dict[str, torch.Tensor]:
    """All tensors in Hugging Face state-dict order."""

    def normal(shape, std):
        return rng.standard_normal(size=shape) * std

    t: dict[str, torch.Tensor] = {}
    t["model.embed_tokens.weight"] = bf16(normal((V, H), 1.0))
    for li in range(L):
        p = f"model.layers.{li}."
        t[p + "self_attn.q_proj.weight"] = bf16(normal((NH * D, H), 1.4 / math.sqrt(H)))
        t[p + "self_attn.q_proj.bias"] = bf16(normal((NH * D,), 0.3))
        t[p + "self_attn.k_proj.weight"] = bf16(normal((G * D, H), 1.4 / math.sqrt(H)))
        t[p + "self_attn.k_proj.bias"] = bf16(normal((G * D,), 0.3))
        t[p + "self_attn.v_proj.weight"] = bf16(normal((G * D, H), 1.0 / math.sqrt(H)))
        t[p + "self_attn.v_proj.bias"] = bf16(normal((G * D,), 0.3))
        t[p + "self_attn.o_proj.weight"] = bf16(normal((H, NH * D), 1.0 / math.sqrt(NH * D)))
        t[p + "self_attn.o_proj.bias"] = bf16(normal((H,), 0.3))
        t[p + "self_attn.sinks"] = bf16(rng.uniform(-1.0, 4.0, size=(NH,)))
        t[p + "mlp.router.weight"] = bf16(normal((E, H), 2.0 / math.sqrt(H)))
        t[p + "mlp.router.bias"] = bf16(normal((E,), 0.5))
        gu_blocks, gu_scales = mxfp4(rng, 2 * I, H, GATE_UP_SCALES)
        t[p + "mlp.experts.gate_up_proj_blocks"] = torch.from_numpy(gu_blocks)
        t[p + "mlp.experts.gate_up_proj_scales"] = torch.from_numpy(gu_scales)
        t[p + "mlp.experts.gate_up_proj_bias"] = bf16(normal((E, 2 * I), 1.0))
        dn_blocks, dn_scales = mxfp4(rng, H, I, DOWN_SCALES)
        t[p + "mlp.experts.down_proj_blocks"] = torch.from_numpy(dn_blocks)
        t[p + "mlp.experts.down_proj_scales"] = torch.from_numpy(dn_scales)
        t[p + "mlp.experts.down_proj_bias"] = bf16(normal((E, H), 0.3))
        t[p + "input_layernorm.weight"] = bf16(rng.uniform(0.6, 1.4, size=(H,)))
        t[p + "post_attention_layernorm.weight"] = bf16(rng.uniform(0.6, 1.4, size=(H,)))
    t["model.norm.weight"] = bf16(rng.uniform(0.6, 1.4, size=(H,)))
    t["lm_head.weight"] = bf16(normal((V, H), 2.0 / math.sqrt(H)))
    return t


def write_sharded(tensors: dict[str, torch.Tensor], out: Path) -> None:
    """Shards in state-dict order, named like the published checkpoints (0-based, "of N-1")."""
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.safetensors")) + list(out.glob("*.json")):
        old.unlink()
    names = list(tensors)
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    cap = math.ceil(total / SHARDS)
    groups: list[list[str]] = [[]]
    size = 0
    for n in names:
        nbytes = tensors[n].numel() * tensors[n].element_size()
        if groups[-1] and size + nbytes > cap and len(groups) < SHARDS:
            groups.append([])
            size = 0
        groups[-1].append(n)
        size += nbytes
    assert len(groups) == SHARDS, f"expected {SHARDS} shards, got {len(groups)}"
    weight_map = {}
    for k, group in enumerate(groups):
        fname = f"model-{k:05d}-of-{SHARDS - 1:05d}.safetensors"
        save_torch({n: tensors[n].contiguous() for n in group}, str(out / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in group})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(config_json(), indent=2, sort_keys=True) + "\n")


def read_sharded(d: Path) -> dict[str, torch.Tensor]:
    """Read the checkpoint back through its index (as a loader would)."""
    index = json.loads((d / "model.safetensors.index.json").read_text())
    out: dict[str, torch.Tensor] = {}
    for fname in sorted(set(index["weight_map"].values())):
        part = load_torch(str(d / fname))
        for n, v in part.items():
            assert index["weight_map"][n] == fname, n
            out[n] = v
    assert set(out) == set(index["weight_map"]), "index and shards disagree"
    return out


def dequant_f32(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """MXFP4 [E,out,in/32,16] + [E,out,in/32] -> float32 [E,out,in], exact."""
    lo = FP4[blocks & 0x0F]
    hi = FP4[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)  # even, odd, even, ...
    vals = np.ldexp(vals, scales.astype(np.int32)[..., None] - 127).astype(np.float32)
    return vals.reshape(blocks.shape[0], blocks.shape[1], -1)


def f32_weights(ckpt: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Every weight as float32 numpy; experts dequantized to [E, out, in] (checkpoint orientation)."""
    w: dict[str, np.ndarray] = {}
    for n, v in ckpt.items():
        if n.endswith("_blocks"):
            base = n[: -len("_blocks")]
            w[base] = dequant_f32(v.numpy(), ckpt[base + "_scales"].numpy())
        elif n.endswith("_scales"):
            continue
        else:
            w[n] = v.float().numpy()
    return w


# ---------------------------------------------------------------------------------------------
# Hugging Face run
# ---------------------------------------------------------------------------------------------
def run_hf(fixture: Path, tokens: np.ndarray, w32: dict[str, np.ndarray]):
    from transformers import GptOssForCausalLM, Mxfp4Config

    torch.manual_seed(0)
    # On CPU transformers dequantizes the MXFP4 experts (dequantize=True makes that explicit and
    # independent of whether a GPU happens to be present). It dequantizes into BF16 (exact: every
    # MXFP4 value is a BF16 number), so the model is cast to float32 afterwards (also exact).
    model, info = GptOssForCausalLM.from_pretrained(
        str(fixture),
        dtype=torch.float32,
        attn_implementation="eager",
        quantization_config=Mxfp4Config(dequantize=True),
        output_loading_info=True,
    )
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info.get(key), f"from_pretrained {key}: {info[key]}"
    loaded_dtypes = sorted({str(p.dtype) for p in model.parameters()})
    model = model.to(torch.float32).eval()
    assert model.config._attn_implementation == "eager"
    assert model.config.rope_scaling["truncate"] is False

    # Every parameter must equal our own float32 dequantization bit for bit.
    params = dict(model.named_parameters())
    expected_names = set()
    for n, ref in w32.items():
        if n.endswith("gate_up_proj") or n.endswith("down_proj"):
            ref = np.ascontiguousarray(ref.transpose(0, 2, 1))  # HF keeps [E, in, out]
        assert n in params, f"HF model has no parameter {n}"
        got = params[n].detach()
        assert got.dtype == torch.float32, f"{n} is {got.dtype}"
        assert tuple(got.shape) == ref.shape, f"{n}: {tuple(got.shape)} vs {ref.shape}"
        assert np.array_equal(got.numpy(), ref), f"{n}: HF parameter differs from our dequantization"
        expected_names.add(n)
    assert set(params) == expected_names, f"unchecked HF parameters: {set(params) - expected_names}"

    rec: dict[str, np.ndarray] = {}
    clamps = []  # per layer: (gate > 7, up > 7, up < -7, routed gate elements)
    hooks = []

    def save(name):
        def hook(_mod, _inp, out):
            x = out[0] if isinstance(out, tuple) else out
            rec[name] = x.detach().reshape(T, -1).float().numpy().copy()

        return hook

    def router_hook(li):
        def hook(_mod, _inp, out):
            scores, idx = out
            rec[f"layers.{li}.router_ids"] = idx.detach().numpy().astype(np.int32)
            rec[f"layers.{li}.router_weights"] = scores.gather(1, idx).detach().numpy().copy()

        return hook

    def clamp_hook(li):
        def hook(mod, args, kwargs):
            x = (args[0] if args else kwargs["hidden_states"]).reshape(-1, H)
            idx = kwargs["router_indices"]
            gate_hi = up_hi = up_lo = n = 0
            for t in range(x.shape[0]):
                for e in idx[t].tolist():
                    gu = x[t] @ mod.gate_up_proj[e] + mod.gate_up_proj_bias[e]
                    gate, up = gu[0::2], gu[1::2]
                    gate_hi += int((gate > mod.limit).sum())
                    up_hi += int((up > mod.limit).sum())
                    up_lo += int((up < -mod.limit).sum())
                    n += gate.numel()
            clamps.append((gate_hi, up_hi, up_lo, n))

        return hook

    m = model.model
    hooks.append(m.embed_tokens.register_forward_hook(save("embeddings")))
    for li, layer in enumerate(m.layers):
        assert layer.self_attn.sliding_window == (WINDOW if li % 2 == 0 else None)
        hooks.append(layer.self_attn.register_forward_hook(save(f"layers.{li}.attention")))
        hooks.append(layer.mlp.router.register_forward_hook(router_hook(li)))
        hooks.append(layer.mlp.experts.register_forward_pre_hook(clamp_hook(li), with_kwargs=True))
        hooks.append(layer.mlp.register_forward_hook(save(f"layers.{li}.moe")))
        hooks.append(layer.register_forward_hook(save(f"layers.{li}.output")))
    hooks.append(m.norm.register_forward_hook(save("final_norm")))
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(tokens.astype(np.int64))[None, :], use_cache=False)
    for h in hooks:
        h.remove()
    rec["logits"] = out.logits[0].float().numpy().copy()
    return rec, clamps, loaded_dtypes, model.model.rotary_emb


# ---------------------------------------------------------------------------------------------
# Independent float64 implementation of the spec (numpy)
# ---------------------------------------------------------------------------------------------
def yarn(truncate=False, concentration=True):
    """inv_freq [D/2] and the concentration factor C (spec 1.3 / 4.3), float64."""
    half = D // 2
    i = np.arange(half, dtype=np.float64)
    extrap = THETA ** (-2.0 * i / D)
    interp = extrap / ROPE_SCALING["factor"]
    orig = ROPE_SCALING["original_max_position_embeddings"]

    def corr(rot):
        return D * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(THETA))

    low, high = corr(ROPE_SCALING["beta_fast"]), corr(ROPE_SCALING["beta_slow"])
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0.0), min(high, D - 1.0)
    ramp = np.clip((i - low) / (high - low), 0.0, 1.0)
    inv = interp * ramp + extrap * (1.0 - ramp)
    c = 0.1 * math.log(ROPE_SCALING["factor"]) + 1.0 if concentration else 1.0
    return inv, c, low, high, ramp


def bf16_round(a: np.ndarray) -> np.ndarray:
    return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16).to(torch.float64).numpy()


def reference_f64(tokens, w32, bug: str | None = None, raw=None):
    """Forward pass per spec section 4 in float64. `bug` switches on one known mistake."""
    w = {n: v.astype(np.float64) for n, v in w32.items()}
    if bug == "nibble_order_ggml":  # low nibbles = elements 0..15, high = 16..31
        for n in list(w):
            if n.endswith("_proj"):
                blocks, scales = raw[n + "_blocks"].numpy(), raw[n + "_scales"].numpy()
                vals = np.concatenate([FP4[blocks & 0x0F], FP4[blocks >> 4]], axis=-1)
                vals = np.ldexp(vals.astype(np.float64), scales.astype(np.int32)[..., None] - 127)
                w[n] = vals.reshape(blocks.shape[0], blocks.shape[1], -1)

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * g

    inv, conc, *_ = yarn(truncate=(bug == "yarn_truncate"), concentration=(bug != "no_concentration"))
    pos = np.arange(T, dtype=np.float64)
    phi = pos[:, None] * inv[None, :]  # [T, D/2]
    cos, sin = np.cos(phi) * conc, np.sin(phi) * conc

    def rope(u):  # u [T, heads, D]
        if bug == "rope_interleaved":
            a, b = u[..., 0::2], u[..., 1::2]
            out = np.empty_like(u)
            out[..., 0::2] = a * cos[:, None] - b * sin[:, None]
            out[..., 1::2] = b * cos[:, None] + a * sin[:, None]
            return out
        a, b = u[..., : D // 2], u[..., D // 2 :]
        return np.concatenate([a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]], -1)

    r: dict[str, np.ndarray] = {}
    stats = {"sink_mass": [], "router_gap": [], "router_order_gap": []}
    x = w["model.embed_tokens.weight"][tokens]  # [T, H]
    r["embeddings"] = x
    for li in range(L):
        p = f"model.layers.{li}."
        h = rms(x, w[p + "input_layernorm.weight"])  # [T, H]
        q = (h @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"]).reshape(T, NH, D)
        k = (h @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"]).reshape(T, G, D)
        v = (h @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"]).reshape(T, G, D)
        q, k = rope(q), rope(k)
        if bug == "kv_cache_bf16":
            k, v = bf16_round(k), bf16_round(v)
        sinks = w[p + "self_attn.sinks"]
        if bug == "sinks_scaled":
            sinks = sinks / math.sqrt(D)
        t_idx, s_idx = np.arange(T)[:, None], np.arange(T)[None, :]
        allowed = s_idx <= t_idx
        sliding = li % 2 == 0 and bug != "no_window"
        if sliding:
            first = t_idx - WINDOW + (0 if bug == "window_off_by_one" else 1)
            allowed = allowed & (s_idx >= first)
        o = np.zeros((T, NH, D))
        mass = []
        for hh in range(NH):
            g = hh % G if bug == "gqa_interleaved" else hh // (NH // G)
            z = (q[:, hh] @ k[:, g].T) / math.sqrt(D)  # [T, T]
            z = np.where(allowed, z, -np.inf)
            if bug == "no_sinks":
                mx = z.max(-1, keepdims=True)
                den = np.exp(z - mx).sum(-1, keepdims=True)
                pr = np.exp(z - mx) / den
            else:
                mx = np.maximum(z.max(-1, keepdims=True), sinks[hh])
                den = np.exp(sinks[hh] - mx) + np.exp(z - mx).sum(-1, keepdims=True)
                pr = np.exp(z - mx) / den
            mass.append(1.0 - pr.sum(-1))
            o[:, hh] = pr @ v[:, g]
        stats["sink_mass"].append(np.array(mass))
        a = o.reshape(T, NH * D) @ w[p + "self_attn.o_proj.weight"].T + w[p + "self_attn.o_proj.bias"]
        r[f"layers.{li}.attention"] = a
        x = x + a

        h = rms(x, w[p + "post_attention_layernorm.weight"])
        logits = h @ w[p + "mlp.router.weight"].T + w[p + "mlp.router.bias"]  # [T, E]
        order = np.argsort(-logits, axis=-1, kind="stable")
        ids = order[:, :K]
        srt = np.take_along_axis(logits, order, -1)
        stats["router_gap"].append((srt[:, K - 1] - srt[:, K]).min())
        stats["router_order_gap"].append((srt[:, : K - 1] - srt[:, 1:K]).min())
        top = np.take_along_axis(logits, ids, -1)
        if bug == "router_softmax_all":  # softmax over all E, no renormalisation over the top-4
            ex = np.exp(logits - logits.max(-1, keepdims=True))
            wts = np.take_along_axis(ex / ex.sum(-1, keepdims=True), ids, -1)
        else:
            ex = np.exp(top - top.max(-1, keepdims=True))
            wts = ex / ex.sum(-1, keepdims=True)
        r[f"layers.{li}.router_ids"] = ids
        r[f"layers.{li}.router_weights"] = wts
        W1, b1 = w[p + "mlp.experts.gate_up_proj"], w[p + "mlp.experts.gate_up_proj_bias"]
        W2, b2 = w[p + "mlp.experts.down_proj"], w[p + "mlp.experts.down_proj_bias"]
        moe = np.zeros((T, H))
        for t in range(T):
            for j in range(K):
                e = ids[t, j]
                u = W1[e] @ h[t] + b1[e]  # [2I], interleaved gate/up
                if bug == "gate_up_halves":
                    gate, up = u[:I], u[I:]
                else:
                    gate, up = u[0::2], u[1::2]
                if bug != "no_gate_clamp":
                    gate = np.minimum(gate, LIMIT)
                if bug != "no_up_clamp":
                    up = np.clip(up, -LIMIT, LIMIT)
                act = gate / (1.0 + np.exp(-ALPHA * gate)) * (up + (0.0 if bug == "no_plus_one" else 1.0))
                if bug == "down_bias_unweighted":
                    moe[t] += wts[t, j] * (W2[e] @ act) + b2[e]
                else:
                    moe[t] += wts[t, j] * (W2[e] @ act + b2[e])
        r[f"layers.{li}.moe"] = moe
        x = x + moe
        r[f"layers.{li}.output"] = x
    x = rms(x, w["model.norm.weight"])
    r["final_norm"] = x
    r["logits"] = x @ w["lm_head.weight"].T
    return r, stats


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """max|a-b| / max|b| (b = the Hugging Face value)."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    out_dir: Path = args.out_dir
    fixture = out_dir / "fixture"
    torch.set_num_threads(1)

    rng = np.random.RandomState(SEED)
    tokens = rng.randint(0, V, size=T).astype(np.int64)
    ckpt = build_checkpoint(rng)
    write_sharded(ckpt, fixture)
    raw = read_sharded(fixture)
    assert list(ckpt) == [n for n in ckpt if n in raw] and set(raw) == set(ckpt)
    for n in ckpt:
        assert raw[n].dtype == ckpt[n].dtype and torch.equal(raw[n], ckpt[n]), n
    w32 = f32_weights(raw)

    # ---- the checkpoint exercises every feature ---------------------------------------------
    assert T > WINDOW and G < NH and E >= 8 and K == 4 and L >= 3
    for n, v in raw.items():
        want = torch.uint8 if n.endswith(("_blocks", "_scales")) else torch.bfloat16
        assert v.dtype == want, f"{n}: {v.dtype}"
        if n.endswith("_blocks"):
            b = v.numpy()
            assert b.shape[-1] == 16 and raw[n[:-7] + "_scales"].shape == b.shape[:-1]
            assert len(np.unique(np.concatenate([b & 15, b >> 4]))) == 16, f"{n}: not all FP4 codes used"
        if n.endswith("_scales"):
            assert len(np.unique(v.numpy())) >= 4, f"{n}: scales not varied"
        if n.endswith("bias"):
            assert (v != 0).float().mean() > 0.9, f"{n}: bias mostly zero"
    inv, conc, low, high, ramp = yarn()
    ramped = [int(i) for i in np.nonzero((ramp > 0) & (ramp < 1))[0]]
    assert ramped, "no inv_freq index in the YaRN ramp"
    for li in range(L):
        s = w32[f"model.layers.{li}.self_attn.sinks"]
        assert np.abs(s).max() > 1.0, "sinks too small to matter"

    # ---- Hugging Face ------------------------------------------------------------------------
    hf, clamps, loaded_dtypes, rotary = run_hf(fixture, tokens, w32)
    hf_inv = rotary.inv_freq.double().numpy()
    assert np.allclose(hf_inv, inv, rtol=1e-6, atol=0), f"inv_freq: HF {hf_inv} vs spec {inv}"
    assert abs(rotary.attention_scaling - conc) < 1e-12

    for name, v in hf.items():
        assert np.all(np.isfinite(v)), f"{name} not finite"
    for li in range(L):
        assert np.abs(hf[f"layers.{li}.output"]).max() < 100.0, "hidden state too large"
        ids = hf[f"layers.{li}.router_ids"]
        assert len(np.unique(ids)) == E, f"layer {li}: not every expert is used"
    layers_both = [li for li, c in enumerate(clamps) if c[0] > 0 and (c[1] + c[2]) > 0]
    assert len(layers_both) >= 3, f"clamps hit in too few layers: {clamps}"
    assert sum(c[0] for c in clamps) >= 20 and sum(c[1] + c[2] for c in clamps) >= 20, clamps

    # ---- float64 spec implementation vs HF ----------------------------------------------------
    ref, stats = reference_f64(tokens, w32)
    for li in range(L):
        assert stats["router_gap"][li] > 1e-3, f"layer {li}: 4th/5th router logits nearly tied"
        assert stats["router_order_gap"][li] > 1e-4, f"layer {li}: top-4 router logits nearly tied"
        assert np.array_equal(ref[f"layers.{li}.router_ids"], hf[f"layers.{li}.router_ids"]), li
        assert stats["sink_mass"][li].mean() > 0.05, f"layer {li}: sinks absorb almost nothing"
    srt = np.sort(hf["logits"], -1)
    top1_margin = float((srt[:, -1] - srt[:, -2]).min())
    assert top1_margin > 1e-3, "top-1 logit nearly tied"
    assert np.array_equal(ref["logits"].argmax(-1), hf["logits"].argmax(-1))

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"HF parameter dtypes after from_pretrained: {loaded_dtypes} -> all float32 after .to(float32)")
    print(f"YaRN low {low:.6f} high {high:.6f}; ramped inv_freq indices {ramped} (ramp {ramp[ramped]})")
    print(f"concentration {conc:.10f}")
    print("\nSwiGLU clamps hit (routed token-expert pairs only):")
    print("layer | gate > 7 | up > 7 | up < -7 | gate elements")
    for li, (g_hi, u_hi, u_lo, n) in enumerate(clamps):
        print(f"{li:5d} | {g_hi:8d} | {u_hi:6d} | {u_lo:7d} | {n}")
    print("\nper-layer activity:")
    print("layer | type    | sink mass mean (max) | 4th-5th router gap | |output| max | output rms")
    for li in range(L):
        sm = stats["sink_mass"][li]
        o = hf[f"layers.{li}.output"]
        print(
            f"{li:5d} | {LAYER_TYPES[li].split('_')[0]:7s} | {sm.mean():.3f} ({sm.max():.3f})        |"
            f" {stats['router_gap'][li]:.4f}             | {np.abs(o).max():11.3f} | {np.sqrt((o * o).mean()):.3f}"
        )
    print(f"min top-1 logit margin: {top1_margin:.4f}")

    print("\nmax relative error, float64 numpy spec implementation vs HF float32 (max|a-b| / max|b|):")
    print("tensor                  | rel err")
    table = [("embeddings", "embeddings")]
    for li in range(L):
        for part in ("attention", "router_weights", "moe", "output"):
            table.append((f"layers.{li}.{part}", f"layers.{li}.{part}"))
    table += [("final_norm", "final_norm"), ("logits", "logits")]
    worst = 0.0
    for label, key in table:
        e = rel(ref[key], hf[key])
        worst = max(worst, e)
        print(f"{label:23s} | {e:.2e}")
    assert worst < 1e-5, f"float64 spec implementation disagrees with HF: {worst}"

    print("\nwhat a known mistake would do to the logits (rel err vs HF; the engine test allows 1e-4):")
    bugs = [
        "no_window", "window_off_by_one", "no_sinks", "sinks_scaled", "yarn_truncate",
        "no_concentration", "rope_interleaved", "gqa_interleaved", "router_softmax_all",
        "no_gate_clamp", "no_up_clamp", "no_plus_one", "gate_up_halves", "down_bias_unweighted",
        "nibble_order_ggml",
    ]
    for bug in bugs:
        r_bug, _ = reference_f64(tokens, w32, bug=bug, raw=raw)
        e = rel(r_bug["logits"], hf["logits"])
        print(f"{bug:20s} | {e:.2e}")
        assert e > 1e-3, f"the fixture would not detect {bug}"
    r_bug, _ = reference_f64(tokens, w32, bug="kv_cache_bf16")
    print(f"(info) K/V rounded to bf16, everything else exact: logits rel err {rel(r_bug['logits'], hf['logits']):.2e}")

    # ---- expected outputs --------------------------------------------------------------------
    expected = {"tokens": tokens.astype(np.int64)}
    for k_, v_ in hf.items():
        expected[k_] = np.ascontiguousarray(v_, dtype=np.int32 if k_.endswith("router_ids") else np.float32)
    shapes = {"tokens": (T,), "embeddings": (T, H), "final_norm": (T, H), "logits": (T, V)}
    for li in range(L):
        shapes.update({f"layers.{li}.attention": (T, H), f"layers.{li}.router_ids": (T, K),
                       f"layers.{li}.router_weights": (T, K), f"layers.{li}.moe": (T, H),
                       f"layers.{li}.output": (T, H)})
    assert set(shapes) == set(expected), set(shapes) ^ set(expected)
    for k_, shp in shapes.items():
        assert expected[k_].shape == shp, (k_, expected[k_].shape, shp)
    # One metadata key: safetensors writes the metadata map in no fixed order.
    meta = {
        "source": f"tests/reference/make_fixture.py seed {SEED}; transformers {transformers.__version__} "
        f"GptOssForCausalLM, float32, eager attention, CPU; torch {torch.__version__.split('+')[0]}"
    }
    save_numpy(expected, str(out_dir / "expected.safetensors"), metadata=meta)
    (out_dir / "tokens.txt").write_text(",".join(str(int(t)) for t in tokens) + "\n")

    files = sorted(fixture.iterdir()) + [out_dir / "expected.safetensors", out_dir / "tokens.txt"]
    print("\nfiles:")
    for f in files:
        print(f"{f.stat().st_size:9d}  {f.relative_to(out_dir)}")
    print(f"{sum(f.stat().st_size for f in files):9d}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
