"""PyTorch's decode speed on a speed model's shapes, as a peer for
lathe-bench on the GPU (docs/benchmarks.md): Hugging Face transformers'
LlamaForCausalLM from a config.json (scripts/speed-models/), random bf16
weights, a static KV cache and torch.compile(mode="reduce-overhead") on the
forward pass (CUDA graphs), greedy, batch 1: a 128-token prompt, then 128
generated tokens; median of 5 after 2 warm-up runs. Also the same without
torch.compile ("eager").

  python3 scripts/torch-decode-peer.py CONFIG.json [--eager-only]
"""
import json
import statistics
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def measure(model, prompt, label):
    def run(new):
        torch.cuda.synchronize()
        t = time.perf_counter()
        model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    for _ in range(2):
        run(128)
    prefill = statistics.median(run(1) for _ in range(5))
    total = statistics.median(run(128) for _ in range(5))
    decode = 127 / (total - prefill)
    print(f"torch {label}: prompt 128 tokens {128 / prefill:.1f} tokens/s, "
          f"generation {decode:.1f} tokens/s", flush=True)


def main():
    cfg = json.load(open(sys.argv[1]))
    cfg.pop("_comment", None)
    config = LlamaConfig(**cfg)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"{params / 1e9:.2f}B parameters", flush=True)
    prompt = torch.randint(300, config.vocab_size, (1, 128), device="cuda")
    model.generation_config.pad_token_id = 0
    with torch.inference_mode():
        measure(model, prompt, "eager")
        if "--eager-only" in sys.argv:
            return
        model.generation_config.cache_implementation = "static"
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
        measure(model, prompt, "compiled (static cache, CUDA graphs)")


if __name__ == "__main__":
    main()
