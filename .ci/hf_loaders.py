"""A `gptoss synth` directory loads in Hugging Face's loaders like a released checkpoint.

Usage: hf_loaders.py GPTOSS_BINARY MODEL_DIR

Checks `tokenizers` (tokenizer.json), `transformers`' AutoConfig and AutoTokenizer (no torch
needed): the vocabulary is exactly 201,088 ids with no id invented past it, the special tokens
sit at gpt-oss's ids, and text encodes to the ids `gptoss tokenize` gives.
"""

import subprocess
import sys

from tokenizers import Tokenizer
from transformers import AutoConfig, AutoTokenizer

VOCAB = 201_088
TEXT = "Hello, world!\n  naïve café — 你好 🙂\r\n\tfn main() { 12345 } don't   \n"
SPECIALS = {"<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|return|>": 200002, "<|start|>": 200006,
            "<|message|>": 200008, "<|call|>": 200012, "<|endofprompt|>": 200018, "<|reserved_201087|>": 201087}


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, expected {want!r}")


def main(binary, model_dir):
    ours = subprocess.run([binary, "tokenize", "--model", model_dir], input=TEXT.encode(), capture_output=True, check=True)
    want_ids = [int(t) for t in ours.stdout.decode().strip().split(",")]

    raw = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    check("tokenizers: vocabulary size", raw.get_vocab_size(with_added_tokens=True), VOCAB)
    check("tokenizers: largest id", max(raw.get_vocab(with_added_tokens=True).values()), VOCAB - 1)
    check("tokenizers: ids of the text", raw.encode(TEXT, add_special_tokens=False).ids, want_ids)
    for name, token_id in SPECIALS.items():
        check(f"tokenizers: id of {name}", raw.token_to_id(name), token_id)

    config = AutoConfig.from_pretrained(model_dir)
    check("AutoConfig: model_type", config.model_type, "gpt_oss")
    check("AutoConfig: vocab_size", config.vocab_size, VOCAB)
    check("AutoConfig: layer_types", len(config.layer_types), config.num_hidden_layers)
    check("AutoConfig: rope original context", config.rope_scaling["original_max_position_embeddings"], 4096)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    check("AutoTokenizer: length", len(tokenizer), VOCAB)
    check("AutoTokenizer: ids of the text", tokenizer.encode(TEXT, add_special_tokens=False), want_ids)
    check("AutoTokenizer: eos", tokenizer.eos_token_id, 200002)
    check("AutoTokenizer: 200018", tokenizer.convert_ids_to_tokens(200018), "<|endofprompt|>")
    check("AutoTokenizer: round trip", tokenizer.decode(want_ids), TEXT)
    print(f"{model_dir}: tokenizers, AutoConfig and AutoTokenizer load it ({VOCAB} ids, {len(want_ids)} tokens agree)")


if __name__ == "__main__":
    main(*sys.argv[1:])
