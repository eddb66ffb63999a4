"""PyTorch's decode speed on a speed model's shapes, as a peer for
lathe-bench on the GPU (docs/benchmarks.md): Hugging Face transformers'
LlamaForCausalLM from a config.json (scripts/speed-models/), random bf16
weights, batch 1, greedy: a 128-token prompt, then 128 generated tokens;
median of 5 after warm-up.
  - "eager": model.generate as it comes;
  - "compiled": gpt-fast style, a static KV cache and the one-token step
    under torch.compile(mode="reduce-overhead") (CUDA graphs), called in a
    loop of our own.

  python3 scripts/torch-decode-peer.py CONFIG.json
"""
import json
import statistics
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, StaticCache


def timed(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def eager(model, prompt):
    run = lambda n: timed(lambda: model.generate(prompt, max_new_tokens=n, min_new_tokens=n,
                                                 do_sample=False))
    run(128)
    prefill = statistics.median(run(1) for _ in range(5))
    total = statistics.median(run(128) for _ in range(5))
    return 128 / prefill, 127 / (total - prefill)


def compiled(model, config, prompt):
    try:
        cache = StaticCache(config=config, max_batch_size=1, max_cache_len=256,
                            device="cuda", dtype=torch.bfloat16)
    except TypeError:  # newer transformers
        cache = StaticCache(config=config, max_cache_len=256)

    def step(ids, position):
        logits = model(input_ids=ids, cache_position=position, past_key_values=cache,
                       use_cache=True).logits
        return logits[:, -1].argmax(-1, keepdim=True)

    decode = torch.compile(step, mode="reduce-overhead", fullgraph=True)

    def prefill():
        cache.reset()
        return step(prompt, torch.arange(128, device="cuda"))

    def generate():
        ids = prefill()
        for i in range(127):
            torch.compiler.cudagraph_mark_step_begin()
            ids = decode(ids, torch.tensor([128 + i], device="cuda")).clone()

    for _ in range(3):
        generate()
    p = statistics.median(timed(prefill) for _ in range(5))
    total = statistics.median(timed(generate) for _ in range(5))
    return 128 / p, 127 / (total - p)


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
        for label, fn in (("eager", lambda: eager(model, prompt)),
                          ("compiled (static cache, CUDA graphs)",
                           lambda: compiled(model, config, prompt))):
            try:
                pp, tg = fn()
                print(f"torch {label}: prompt 128 tokens {pp:.1f} tokens/s, "
                      f"generation {tg:.1f} tokens/s", flush=True)
            except Exception as e:  # report and go on with the other variant
                print(f"torch {label}: failed: {type(e).__name__}: {str(e)[:200]}", flush=True)


if __name__ == "__main__":
    main()
