#!/usr/bin/env bash
# Fills .device/ for scripts/cuda-params-check.sh: the runtime tools,
# lathe-pack and CudaBackendTest built here (with the shared libraries a
# GPU host may lack), and cuda artifacts compiled from config.json files
# alone (--external-weights: no weights read here, the GPU host packs them):
# stories15M's shape in bf16 and INT8/INT4 groups, and the Llama-3.2-1B
# shape in bf16 and INT4, each 1B build also as a speed model (synthetic
# weights) to compare with.
set -euo pipefail
build=${BUILD:-build}
out=${1:-.device}
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/params/check"
cp "$build/bin/lathe-run" "$build/bin/lathe-bench" "$build/bin/lathe-pack" \
   "$build/test/unit/CudaBackendTest" "$out/bin/"
for lib in libfmt.so.9 libhwy.so.1; do
  cp "$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')" "$out/lib/"
done
compile() { "$build/bin/lathe-compile" "$@" --target=cuda -q; }
p=$out/params
# stories15M's shape and tokenizer-free config (scripts/llama2c-to-hf.py's).
cat > "$p/stories15M.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 288,
 "intermediate_size": 768, "num_hidden_layers": 6, "num_attention_heads": 6,
 "num_key_value_heads": 6, "vocab_size": 32000, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "hidden_act": "silu",
 "tie_word_embeddings": true, "torch_dtype": "bfloat16"}
JSON
compile "$p/stories15M.json" --external-weights -o "$p/check/s15-bf16.lathe"
compile "$p/stories15M.json" --external-weights --quant=int8:group=32 -o "$p/check/s15-int8.lathe"
compile "$p/stories15M.json" --external-weights --quant=int4:group=32 --activations=float \
  -o "$p/check/s15-int4-float.lathe"
l1b=scripts/speed-models/llama-3.2-1b.json
for q in none int4:group=32; do
  name=$([ "$q" = none ] && echo bf16 || echo int4)
  compile "$l1b" --external-weights --quant="$q" --kv=bf16 -o "$p/l1b-$name-packed.lathe"
  compile "$l1b" --synthetic-weights --quant="$q" --kv=bf16 -o "$p/l1b-$name-synthetic.lathe"
done
du -sh "$out"
