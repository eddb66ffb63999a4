#!/usr/bin/env python3
"""Writes a Hugging Face LlamaForCausalLM folder with random weights, as
transformers initializes them (seeded), saved as bf16 safetensors: a real
checkpoint's form and size on a GPU host, for lathe-pack to pack from.

    make-random-hf.py CONFIG_JSON OUT_DIR [--seed N]

Needs torch and transformers (the GPU machine has both); the weights are
made on the GPU when there is one.
"""
import sys

import torch
import transformers

args = sys.argv[1:]
seed = 0
if "--seed" in args:
    i = args.index("--seed")
    seed = int(args[i + 1])
    del args[i:i + 2]
config_path, out = args
config = transformers.LlamaConfig.from_json_file(config_path)
torch.manual_seed(seed)
device = "cuda" if torch.cuda.is_available() else "cpu"
with torch.device(device):
    model = transformers.LlamaForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(out, safe_serialization=True)
