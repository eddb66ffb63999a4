//===- TransformerOps.td - tfm operations ------------------*- tablegen -*-===//
//
// Activations are `tensor<?xNxf32>`: one row per token of the step, so the
// same function serves decode (1 row) and prefill (many rows). Weights are
// produced by `tfm.weight` and keep their storage element type.
//
//===----------------------------------------------------------------------===//

#ifndef LATHE_TRANSFORMER_OPS
#define LATHE_TRANSFORMER_OPS

include "TransformerDialect.td"
include "TransformerAttrs.td"
include "TransformerTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/OpBase.td"

// Element types a weight may be stored in. Quantized formats join this list.
def Transformer_QuantizedElement : Type<
    CPred<"::llvm::isa<::lathe::tfm::QuantizedTypeInterface>($_self)">,
    "quantized weight format">;
def Transformer_WeightElement : AnyTypeOf<[F32, F16, BF16, Transformer_QuantizedElement]>;
def Transformer_WeightTensor : RankedTensorOf<[Transformer_WeightElement]>;
def Transformer_Activation : TensorRankOf<[F32], [2]>;
def Transformer_TokenIds : TensorRankOf<[I32], [1]>;

def Transformer_WeightOp : Transformer_Op<"weight", [Pure]> {
  let summary = "A named model weight";
  let description = [{
    ```mlir
    %wq = tfm.weight "layers.0.wq" {value = dense_resource<layers.0.wq> : tensor<288x288xf32>} : tensor<288x288xf32>
    ```
    The name is the tensor's name in the artifact. `value` holds the data in
    the storage format of the result's element type: the elements themselves
    for f32/f16/bf16, the packed bytes (a 1-D `i8` tensor) for a quantized
    format such as `!tfm.bfp<mantissa = 4, block = 32>`.
  }];
  let arguments = (ins StrAttr:$sym_name, ElementsAttr:$value);
  let results = (outs Transformer_WeightTensor:$result);
  let assemblyFormat = "$sym_name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Transformer_EmbeddingOp : Transformer_Op<"embedding", [Pure]> {
  let summary = "Looks up one table row per token";
  let arguments = (ins Transformer_WeightTensor:$table, Transformer_TokenIds:$tokens);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = [{
    $table `[` $tokens `]` attr-dict `:` type($table) `,` type($tokens) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Transformer_RMSNormOp : Transformer_Op<"rms_norm", [Pure]> {
  let summary = "Root-mean-square normalisation of each row, times a gain";
  let description = [{
    `y = x / sqrt(mean(x^2) + epsilon) * gain`, row by row. A gain shorter
    than the row normalizes each gain-wide slice of the row on its own: a
    gain of `head_dim` values over `heads * head_dim` columns is the per-head
    q/k norm of Qwen3.
  }];
  let arguments = (ins Transformer_Activation:$input, Transformer_WeightTensor:$gain,
                       F32Attr:$epsilon);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = [{
    $input `,` $gain attr-dict `:` type($input) `,` type($gain) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Transformer_LinearOp : Transformer_Op<"linear", [Pure]> {
  let summary = "Matrix product with a weight stored as [out, in]";
  let description = [{
    `result[t, n] = sum_k input[t, k] * weight[n, k]`. The weight keeps its
    storage format; kernels decode it on the fly.
  }];
  let arguments = (ins Transformer_Activation:$input, Transformer_WeightTensor:$weight);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Transformer_RopeOp : Transformer_Op<"rope", [Pure]> {
  let summary = "Rotary position embedding of each head";
  let description = [{
    Rotates pairs of dimensions of every `head_dim`-wide head of row `t` by
    `positions[t] * f_i` for the frequency `f_i = theta^(-2i/head_dim)` of
    pair `i`. `layout` says which dimensions pair up (see
    `#tfm.rope_layout`).

    A non-zero `scaling_factor` applies Llama 3's frequency scaling
    (`rope_scaling` of type `llama3` in a Hugging Face config): with
    wavelength `w_i = 2 pi / f_i`, pairs with `w_i` above
    `original_context / low_freq_factor` turn `scaling_factor` times
    slower, pairs below `original_context / high_freq_factor` stay, and the
    pairs between blend the two linearly in `original_context / w_i`.

    A non-empty `pair_order` (written by `lathe-reorder-key-channels`)
    changes which frequency turns which pair: it holds `G` permutations of
    the `head_dim / 2` pairs, and the pair at position `j` of a head of
    group `g` turns at `f_(pair_order[g * head_dim / 2 + j])`. Head `h` of
    the row's `H` heads is in group `h * G / H`, so the queries' heads,
    grouped like their KV heads, share their KV head's order.
  }];
  let arguments = (ins Transformer_Activation:$input, Transformer_TokenIds:$positions,
                       I64Attr:$head_dim, F32Attr:$theta,
                       Transformer_RopeLayoutAttr:$layout,
                       DefaultValuedAttr<F32Attr, "0.0f">:$scaling_factor,
                       DefaultValuedAttr<F32Attr, "0.0f">:$low_freq_factor,
                       DefaultValuedAttr<F32Attr, "0.0f">:$high_freq_factor,
                       DefaultValuedAttr<I64Attr, "0">:$original_context,
                       DefaultValuedOptionalAttr<DenseI32ArrayAttr, "{}">:$pair_order);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = [{
    $input `,` $positions attr-dict `:` type($input) `,` type($positions) `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// The Llama 3 scaling the four scaling attributes spell (off when
    /// scaling_factor is 0).
    ::lathe::plan::RopeScaling getScaling() {
      return {getScalingFactor().convertToFloat(), getLowFreqFactor().convertToFloat(),
              getHighFreqFactor().convertToFloat(), int64_t(getOriginalContext())};
    }
    /// The pair_order attribute as the runtime's step holds it
    /// (runtime/plan/RopeFrequencies.h, pairOrderProblem).
    std::vector<uint32_t> getPairOrderVector() {
      return {getPairOrder().begin(), getPairOrder().end()};
    }
  }];
  let hasVerifier = 1;
}

def Transformer_BiasAddOp : Transformer_Op<"bias_add", [Pure]> {
  let summary = "Adds a bias vector to each row";
  let description = [{
    `y[t, n] = x[t, n] + bias[n]`: the biases of the q/k/v projections of
    Qwen2 and of Llama checkpoints with `attention_bias`.
  }];
  let arguments = (ins Transformer_Activation:$input, Transformer_WeightTensor:$bias);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = [{
    $input `,` $bias attr-dict `:` type($input) `,` type($bias) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Transformer_AttentionOp : Transformer_Op<"attention",
    [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "Causal multi-head attention over a KV cache";
  let description = [{
    Stores row `t` of `keys` and `values` at position `positions[t]` of
    layer `layer` of the cache, then lets query row `t` attend to cache
    positions `0 ..= positions[t]` with softmax(q.k / sqrt(head_dim)).
    Query head `h` reads KV head `h / (heads / kv_heads)` (grouped-query
    attention).
  }];
  let arguments = (ins Transformer_Activation:$queries, Transformer_Activation:$keys,
                       Transformer_Activation:$values, Transformer_TokenIds:$positions,
                       Transformer_KVCacheType:$cache, I64Attr:$layer,
                       I64Attr:$heads);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = [{
    $queries `,` $keys `,` $values `,` $positions `,` $cache attr-dict `:`
    type($queries) `,` type($keys) `,` type($values) `,` type($positions) `,`
    type($cache) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Transformer_SiluMulOp : Transformer_Op<"silu_mul",
    [Pure, SameOperandsAndResultType]> {
  let summary = "SwiGLU gating: silu(gate) * up";
  let arguments = (ins Transformer_Activation:$gate, Transformer_Activation:$up);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def Transformer_AddOp : Transformer_Op<"add",
    [Pure, Commutative, SameOperandsAndResultType]> {
  let summary = "Element-wise sum (residual connections)";
  let arguments = (ins Transformer_Activation:$lhs, Transformer_Activation:$rhs);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Transformer_LogitsOp : Transformer_Op<"logits", [Pure]> {
  let summary = "Next-token scores from the final hidden state";
  let description = [{
    `result[t, v] = sum_k input[t, k] * classifier[v, k]`: a linear layer
    whose output is the vocabulary. Kept apart from `tfm.linear` because it
    is the model's output and may be computed for the last row only.
  }];
  let arguments = (ins Transformer_Activation:$input, Transformer_WeightTensor:$classifier);
  let results = (outs Transformer_Activation:$result);
  let assemblyFormat = [{
    $input `,` $classifier attr-dict `:` type($input) `,` type($classifier) `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // LATHE_TRANSFORMER_OPS
