//===- KernelPlanDialect.td - the plan dialect -------------*- tablegen -*-===//
//
// `plan` is the kernel plan: one forward step of a model as kernels over
// explicit activation buffers. It sits between the graph-level `tfm`
// dialect and the backends: `tfm` lowers to it (lathe-lower-to-plan), its
// own passes decide buffer reuse, which products run as one job, which
// element-wise steps fuse and each product's activation precision, and the
// artifact's schedule and the generated code are produced from it.
//
//===----------------------------------------------------------------------===//

#ifndef LATHE_KERNEL_PLAN_DIALECT
#define LATHE_KERNEL_PLAN_DIALECT

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Plan_Dialect : Dialect {
  let name = "plan";
  let summary = "Kernels over explicit activation buffers: the kernel plan";
  let description = [{
    A function of the `plan` dialect runs one step of a batch of tokens:
    every activation lives in a buffer (`!plan.buffer<width, f32>`, one row
    of `width` elements per token of the step) created by `plan.buffer`, and
    every kernel reads its input buffers and writes its output buffers
    (destination style: kernels have no results). Weights stay `tfm.weight`
    constants in their storage formats; the token ids, positions and KV
    cache of the step are the function's arguments.
  }];
  let cppNamespace = "::lathe::kplan";
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
  // plan.spec_tree (lathe-plan-spec-tree) and plan.layer_groups
  // (lathe-group-layers) on the step's function.
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    /// The function attribute holding the step's #plan.spec_tree.
    static ::llvm::StringRef getSpecTreeAttrName() { return "plan.spec_tree"; }
    /// The function attribute holding the step's #plan.layer_groups.
    static ::llvm::StringRef getLayerGroupsAttrName() { return "plan.layer_groups"; }
    /// A kernel's #plan.hls_loop (lathe-hls-schedule).
    static ::llvm::StringRef getHlsLoopAttrName() { return "plan.hls"; }
    /// A product's local arrays' partitions, #plan.hls_array_partition
    /// each (lathe-hls-schedule).
    static ::llvm::StringRef getHlsPartitionsAttrName() { return "plan.hls_partitions"; }
    /// A product whose stages run as a dataflow pipeline, #plan.hls_dataflow
    /// (lathe-hls-schedule).
    static ::llvm::StringRef getHlsDataflowAttrName() { return "plan.hls_dataflow"; }
    /// The step function's memory interfaces, #plan.hls_interface each
    /// (lathe-hls-schedule).
    static ::llvm::StringRef getHlsInterfacesAttrName() { return "plan.hls_interfaces"; }
  }];
}

class Plan_Op<string mnemonic, list<Trait> traits = []>
    : Op<Plan_Dialect, mnemonic, traits>;

def Plan_BufferType : TypeDef<Plan_Dialect, "Buffer"> {
  let mnemonic = "buffer";
  let summary = "An activation buffer: one row of `width` elements per token";
  let parameters = (ins "int64_t":$width, "::mlir::Type":$elementType);
  let assemblyFormat = "`<` $width `,` $elementType `>`";
  let genVerifyDecl = 1;
}

def Plan_Activations : I32EnumAttr<"Activations", "precision of a product's input", [
    I32EnumAttrCase<"float_", 0, "float">,
    I32EnumAttrCase<"int8", 1, "int8">,
    I32EnumAttrCase<"bf16", 2, "bf16">,
  ]> {
  let cppNamespace = "::lathe::kplan";
  let genSpecializedAttr = 0;
}
def Plan_ActivationsAttr : EnumAttr<Plan_Dialect, Plan_Activations, "activations"> {
  let assemblyFormat = "`<` $value `>`";
  let summary = "What a product rounds its input to";
  let description = [{
    `#plan.activations<float>`: the input stays float (the reference
    numerics). `#plan.activations<int8>`: the input is rounded to int8 with
    one scale per weight block and multiplied with integer dot products;
    only weights whose format has integer codes (INT, BFP, MXINT8, MXFP4)
    may ask for it. `#plan.activations<bf16>`: each input value is rounded
    to bfloat16 (to nearest, ties to even) and the product sums in float,
    as frameworks' bf16 products do; any weights.
  }];
}

def Plan_SpecTreeAttr : AttrDef<Plan_Dialect, "SpecTree"> {
  let mnemonic = "spec_tree";
  let summary = "The token tree a decode step verifies";
  let description = [{
    `#plan.spec_tree<branching = [4, 2, 2], nodes = 29>` on the step's
    function (`plan.spec_tree`, set by lathe-plan-spec-tree) says that the
    step verifies speculative token trees of this shape: the root (the
    last accepted token) has up to 4 children, each of them 2, each of
    those 2. `nodes` is the full tree's node count, the root included
    (28 drafted + 1): the most tokens one verification step runs, as one
    batch with each node seeing its ancestors and positioned by its depth.
    The shape follows runtime/speculative/TreeShape.h (positive
    branchings, at most 32 levels and 1024 nodes) and travels to the
    artifact's schedule, where `lathe-run --speculate` reads it.
  }];
  let parameters = (ins ArrayRefParameter<"int32_t">:$branching, "int64_t":$nodes);
  let assemblyFormat = "`<` `branching` `=` `[` $branching `]` `,` `nodes` `=` $nodes `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The runtime's form of the shape (verified to be valid).
    ::lathe::speculative::TreeShape getShape() const {
      return {{getBranching().begin(), getBranching().end()}};
    }
  }];
}

def Plan_LayerGroupsAttr : AttrDef<Plan_Dialect, "LayerGroups"> {
  let mnemonic = "layer_groups";
  let summary = "The model's layers split into contiguous groups a step can run one at a time";
  let description = [{
    `#plan.layer_groups<first = [0, 3, 6], layers = 8>` on the step's
    function (`plan.layer_groups`, set by lathe-group-layers) splits the
    8 layers into the groups [0, 3), [3, 6) and [6, 8): `first` holds the
    first layer of each group, starting at 0, strictly increasing, each
    below `layers`. A layered prefill runs a prompt one group per
    iteration, carrying its hidden state between groups; the first group
    also runs the embedding, the last the final norm and the classifier.
    The groups travel to the artifact's schedule with the step at which
    each begins.
  }];
  let parameters = (ins ArrayRefParameter<"int32_t">:$first, "int64_t":$layers);
  let assemblyFormat = "`<` `first` `=` `[` $first `]` `,` `layers` `=` $layers `>`";
  let genVerifyDecl = 1;
}

def Plan_HlsLoopAttr : AttrDef<Plan_Dialect, "HlsLoop"> {
  let mnemonic = "hls_loop";
  let summary = "How an FPGA design schedules a kernel's loops";
  let description = [{
    `#plan.hls_loop<ii = 1, unroll = 4>` on a kernel (`plan.hls`, set by
    lathe-hls-schedule): `ii` is the target initiation interval of its
    pipelined loops (`#pragma HLS PIPELINE II=...`). On a product
    (`plan.matmul`, `plan.matmuls`, `plan.logits`) `unroll` is the rows it
    computes at once (the row loop unrolled by that factor), which must
    divide every one of its weights' rows; rows are independent, so the
    results do not change. The other kernels (embedding, RMSNorm, RoPE,
    attention with its softmax, SwiGLU, adds) take `unroll = 1`. The HLS
    code generator (lathe-compile --target=hls) lowers it last, into the
    kernel's template arguments and so its pragmas.
  }];
  let parameters = (ins "int64_t":$ii, "int64_t":$unroll);
  let assemblyFormat = "`<` `ii` `=` $ii `,` `unroll` `=` $unroll `>`";
  let genVerifyDecl = 1;
}

def Plan_HlsPartitionKind : I32EnumAttr<"HlsPartitionKind", "how an array is split into banks", [
    I32EnumAttrCase<"complete", 0, "complete">,
    I32EnumAttrCase<"cyclic", 1, "cyclic">,
    I32EnumAttrCase<"block", 2, "block">,
  ]> {
  let cppNamespace = "::lathe::kplan";
  let genSpecializedAttr = 0;
}

def Plan_HlsArrayPartitionAttr : AttrDef<Plan_Dialect, "HlsArrayPartition"> {
  let mnemonic = "hls_array_partition";
  let summary = "How an FPGA design splits one of a kernel's local arrays into banks";
  let description = [{
    `#plan.hls_array_partition<"rows", complete, dim = 1>` or
    `#plan.hls_array_partition<"codes", cyclic, factor = 32, dim = 1>` in a
    product's `plan.hls_partitions` (set by lathe-hls-schedule): the local
    array of the generated product it names is split along dimension `dim`
    (from 1) into banks with ports of their own, `complete`ly (one bank per
    element; no factor) or into `factor` banks, `cyclic` (element i in bank
    i mod factor) or `block` (consecutive runs). The arrays: `rows`, the
    float product's decoded rows (`[unroll][columns]`, read by the unrolled
    rows at once: dimension 1 must give each of them a bank of its own, so
    `complete`, or `factor` = the product's `#plan.hls_loop` unroll), and
    `codes`, the int8-activation product's rounded input (one dimension,
    read a weight block at a time). The generator lowers each into an
    `ARRAY_PARTITION` pragma on that array.
  }];
  let parameters = (ins StringRefParameter<>:$array,
                        EnumParameter<Plan_HlsPartitionKind>:$kind,
                        DefaultValuedParameter<"int64_t", "0">:$factor, "int64_t":$dim);
  let assemblyFormat = [{
    `<` $array `,` $kind `,` (`factor` `=` $factor^ `,`)? `dim` `=` $dim `>`
  }];
  let genVerifyDecl = 1;
}

def Plan_HlsDataflowAttr : AttrDef<Plan_Dialect, "HlsDataflow"> {
  let mnemonic = "hls_dataflow";
  let summary = "A product whose stages overlap as a dataflow pipeline on an FPGA";
  let description = [{
    `plan.hls_dataflow = #plan.hls_dataflow` on a float product (set by
    lathe-hls-schedule where it is legal): the generated product loops over
    its row groups (`#plan.hls_loop`'s unroll rows each) with two tasks per
    group that Vitis HLS overlaps (`#pragma HLS
    DATAFLOW` in the loop's body): the first reads the group's weight rows
    from the AXI master and decodes them into the local `rows` array, the
    second accumulates their dot products with the input into the output.
    `rows` is the only buffer between them (one producer, one consumer, a
    ping-pong pair in hardware); the input is read by the second only and
    the output written by it only (a product's output is never its input).
    An int8-activation product has no decode stage, and a product of one
    row group nothing to overlap: neither takes it.
  }];
}

def Plan_HlsInterfaceAttr : AttrDef<Plan_Dialect, "HlsInterface"> {
  let mnemonic = "hls_interface";
  let summary = "One memory interface of an FPGA design's step function";
  let description = [{
    `#plan.hls_interface<"weights", bundle = "gmem0", depth = 60751872>` in
    the step function's `plan.hls_interfaces` (set by lathe-hls-schedule):
    the AXI master of one of the generated top function's memory arguments
    (`weights` in bytes, `tables` in doubles, `cache` and `logits` in
    floats), the bundle it shares with any other argument of that bundle,
    and its depth in elements (what C simulation and co-simulation size it
    to, at least what the design reads or writes there). The generator
    lowers each into an `INTERFACE` pragma.
  }];
  let parameters = (ins StringRefParameter<>:$port, StringRefParameter<>:$bundle, "int64_t":$depth);
  let assemblyFormat = "`<` $port `,` `bundle` `=` $bundle `,` `depth` `=` $depth `>`";
  let genVerifyDecl = 1;
}

#endif // LATHE_KERNEL_PLAN_DIALECT
