//===- KernelPlanOps.td - plan operations ------------------*- tablegen -*-===//
//
// Every kernel reads buffers marked MemRead and writes buffers marked
// MemWrite, so that generic passes keep their order; weights are tensors
// produced by `tfm.weight`, in their storage format.
//
//===----------------------------------------------------------------------===//

#ifndef LATHE_KERNEL_PLAN_OPS
#define LATHE_KERNEL_PLAN_OPS

include "KernelPlanDialect.td"
include "dialects/Transformer/TransformerAttrs.td"
include "dialects/Transformer/TransformerTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/OpBase.td"

def Plan_Weight : RankedTensorOf<[AnyType]>;
def Plan_TokenIds : TensorRankOf<[I32], [1]>;
class Plan_In<string what> : Arg<Plan_BufferType, what, [MemRead]>;
class Plan_Out<string what> : Arg<Plan_BufferType, what, [MemWrite]>;

def Plan_BufferOp : Plan_Op<"buffer", [MemoryEffects<[MemAlloc]>]> {
  let summary = "A new activation buffer";
  let description = [{
    ```mlir
    %b = plan.buffer : !plan.buffer<288, f32>
    ```
    Rows for every token of the step; lathe-plan-reuse-buffers lets buffers
    whose contents are dead serve later values.
  }];
  let results = (outs Plan_BufferType:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

def Plan_EmbeddingOp : Plan_Op<"embedding"> {
  let summary = "out[t] = table[tokens[t]]";
  let arguments = (ins Plan_Weight:$table, Plan_TokenIds:$tokens,
                       Plan_Out<"one row per token">:$out);
  let assemblyFormat = [{
    $table `[` $tokens `]` `->` $out attr-dict `:` type($table) `,` type($tokens) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Plan_RMSNormOp : Plan_Op<"rms_norm"> {
  let summary = "out = input / sqrt(mean(input^2) + epsilon) * gain, row by row";
  let description = [{
    A gain shorter than the row normalizes each gain-wide slice of a row on
    its own (per-head q/k norms), as `tfm.rms_norm` defines.
  }];
  let arguments = (ins Plan_In<"">:$input, Plan_Weight:$gain, F32Attr:$epsilon,
                       Plan_Out<"">:$out);
  let assemblyFormat = [{
    $input `,` $gain `->` $out attr-dict `:` type($input) `,` type($gain) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Plan_MatmulOp : Plan_Op<"matmul"> {
  let summary = "out[t, n] = sum_k input[t, k] * weight[n, k]";
  let description = [{
    The weight keeps its storage format and is decoded in registers.
    `activations` says whether the input is rounded to int8 or bf16 first
    (`#plan.activations`, set by lathe-plan-activations).
  }];
  let arguments = (ins Plan_In<"">:$input, Plan_Weight:$weight,
                       DefaultValuedAttr<Plan_ActivationsAttr,
                                         "::lathe::kplan::Activations::float_">:$activations,
                       Plan_Out<"">:$out);
  let assemblyFormat = [{
    $input `,` $weight `->` $out attr-dict `:` type($input) `,` type($weight) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Plan_MatmulsOp : Plan_Op<"matmuls", [AttrSizedOperandSegments]> {
  let summary = "Several products of one input, run as one parallel job";
  let description = [{
    `outs[i] = input * weights[i]^T`, for the q/k/v projections or the
    gate/up projections: the threads meet once for the group instead of
    once per weight (lathe-plan-group-matmuls forms them). No output is the
    input, and the outputs are distinct.
  }];
  let arguments = (ins Plan_In<"">:$input, Variadic<Plan_Weight>:$weights,
                       DefaultValuedAttr<Plan_ActivationsAttr,
                                         "::lathe::kplan::Activations::float_">:$activations,
                       Arg<Variadic<Plan_BufferType>, "", [MemWrite]>:$outs);
  let assemblyFormat = [{
    $input `,` `[` $weights `]` `->` `[` $outs `]` attr-dict `:` type($input) `,`
    `[` type($weights) `]` `,` `[` type($outs) `]`
  }];
  let hasVerifier = 1;
}

def Plan_RopeOp : Plan_Op<"rope"> {
  let summary = "Rotary position embedding of every head of each row";
  let description = [{
    The frequencies, their optional Llama 3 scaling and the optional
    `pair_order` are those of `tfm.rope` (runtime/plan/RopeFrequencies.h
    computes them).
  }];
  let arguments = (ins Plan_In<"">:$input, Plan_TokenIds:$positions, I64Attr:$head_dim,
                       F32Attr:$theta, Transformer_RopeLayoutAttr:$layout,
                       DefaultValuedAttr<F32Attr, "0.0f">:$scaling_factor,
                       DefaultValuedAttr<F32Attr, "0.0f">:$low_freq_factor,
                       DefaultValuedAttr<F32Attr, "0.0f">:$high_freq_factor,
                       DefaultValuedAttr<I64Attr, "0">:$original_context,
                       DefaultValuedOptionalAttr<DenseI32ArrayAttr, "{}">:$pair_order,
                       Plan_Out<"">:$out);
  let assemblyFormat = [{
    $input `at` $positions `->` $out attr-dict `:` type($input) `,` type($positions) `,` type($out)
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

def Plan_BiasAddOp : Plan_Op<"bias_add"> {
  let summary = "out[t, n] = input[t, n] + bias[n]";
  let arguments = (ins Plan_In<"">:$input, Plan_Weight:$bias, Plan_Out<"">:$out);
  let assemblyFormat = [{
    $input `,` $bias `->` $out attr-dict `:` type($input) `,` type($bias) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Plan_AttentionOp : Plan_Op<"attention"> {
  let summary = "Attention of each token to the cache rows it may see";
  let description = [{
    Stores the step's keys and values in layer `layer` of the paged KV
    cache, then lets each query row attend to its sequence's cached rows
    and its ancestors in the batch (runtime/backend/Batch.h). Query head
    `h` reads KV head `h / (heads / kv_heads)`. `activations` (float or
    bf16, set by lathe-plan-activations) says whether each query value is
    rounded to bfloat16 before its products with the cached keys; the
    probabilities and every sum stay float.
  }];
  let arguments = (ins Plan_In<"">:$queries, Plan_In<"">:$keys, Plan_In<"">:$values,
                       Plan_TokenIds:$positions, Transformer_KVCacheType:$cache,
                       I64Attr:$layer, I64Attr:$heads, I64Attr:$kv_heads, I64Attr:$head_dim,
                       DefaultValuedAttr<Plan_ActivationsAttr,
                                         "::lathe::kplan::Activations::float_">:$activations,
                       Plan_Out<"">:$out);
  let assemblyFormat = [{
    $queries `,` $keys `,` $values `,` $positions `,` $cache `->` $out attr-dict `:`
    type($queries) `,` type($keys) `,` type($values) `,` type($positions) `,`
    type($cache) `,` type($out)
  }];
  let hasVerifier = 1;
}

class Plan_Elementwise<string mnemonic, string summary_>
    : Plan_Op<mnemonic, [AllTypesMatch<["lhs", "rhs", "out"]>]> {
  let summary = summary_;
  let arguments = (ins Plan_In<"">:$lhs, Plan_In<"">:$rhs, Plan_Out<"">:$out);
  let assemblyFormat = [{
    $lhs `,` $rhs `->` $out attr-dict `:` type($out)
  }];
  let hasVerifier = 1;
}

def Plan_SiluMulOp : Plan_Elementwise<"silu_mul", "out = silu(lhs) * rhs (SwiGLU; lhs is the gate)">;
def Plan_AddOp : Plan_Elementwise<"add", "out = lhs + rhs">;

def Plan_AddRMSNormOp : Plan_Op<"add_rms_norm", [AllTypesMatch<["lhs", "rhs", "sum", "out"]>]> {
  let summary = "sum = lhs + rhs, then out = rms_norm(sum) * gain, in one pass";
  let description = [{
    A residual add whose sum the next RMSNorm reads, fused by
    lathe-plan-fuse-add-rms-norm: one pass over each row writes the sum and
    accumulates its squares. Same numerics as the two steps.
  }];
  let arguments = (ins Plan_In<"">:$lhs, Plan_In<"">:$rhs, Plan_Weight:$gain,
                       F32Attr:$epsilon, Plan_Out<"">:$sum, Plan_Out<"">:$out);
  let assemblyFormat = [{
    $lhs `,` $rhs `,` $gain `->` $sum `,` $out attr-dict `:` type($gain) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Plan_LogitsOp : Plan_Op<"logits"> {
  let summary = "Vocabulary scores of the tokens of the step that ask for them";
  let arguments = (ins Plan_In<"">:$input, Plan_Weight:$classifier,
                       DefaultValuedAttr<Plan_ActivationsAttr,
                                         "::lathe::kplan::Activations::float_">:$activations,
                       Plan_Out<"">:$out);
  let assemblyFormat = [{
    $input `,` $classifier `->` $out attr-dict `:` type($input) `,` type($classifier) `,` type($out)
  }];
  let hasVerifier = 1;
}

#endif // LATHE_KERNEL_PLAN_OPS
