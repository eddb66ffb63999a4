//===- Passes.td - Lathe's MLIR passes ---------------------*- tablegen -*-===//
//
// Every pass is a standalone MLIR pass over modules holding `tfm` IR, usable
// from lathe-opt, from lathe-compile's pipeline and from other compilers.
//
//===----------------------------------------------------------------------===//

#ifndef LATHE_PASSES
#define LATHE_PASSES

include "mlir/Pass/PassBase.td"

def Quantize : Pass<"lathe-quantize", "mlir::ModuleOp"> {
  let summary = "Store the weights of tfm.linear in a packed number format";
  let description = [{
    Rewrites the weight of every `tfm.linear` (the classifier of
    `tfm.logits` only with `classifier=true`; the embedding table, unless it
    is that classifier, and norm gains stay as they are) into
    the format named by `format`, e.g. `bfp4:block=32`, `mxfp6_e3m2`,
    `fp6_4p2`, `int4:group=32:asym` (docs/formats.md). The classifier gets
    `classifier-format` when given (lathe-compile keeps a 4-bit model's
    classifier at 8 bits, as llama.cpp does). With `linears=false` only the
    classifier is packed (after lathe-select-formats has chosen the
    linears'). The new `tfm.weight` has the format as its element type and
    the packed bytes, produced by runtime/formats, as its value. Weights
    already packed are left alone. With `shapes-only` no value is read or
    packed: lathe-compile builds so from a config.json alone
    (`--external-weights`, `--synthetic-weights`), whose artifact holds
    the tensors' formats and sizes but none of their bytes (a 1B model's
    INT4 build packed 1.2 billion zeros in 49 s and 6 GB).
  }];
  let options = [
    Option<"format", "format", "std::string", /*default=*/"\"bfp8:block=32\"",
           "Format of the packed weights (docs/formats.md)">,
    Option<"classifier", "classifier", "bool", /*default=*/"false",
           "Also pack the classifier of tfm.logits (and, when the embedding "
           "shares it, the embedding table: lookups then decode one row)">,
    Option<"classifierFormat", "classifier-format", "std::string", /*default=*/"\"\"",
           "Format of the classifier (default: `format`)">,
    Option<"linears", "linears", "bool", /*default=*/"true",
           "Pack the weights of tfm.linear (false: only the classifier)">,
    Option<"shapesOnly", "shapes-only", "bool", /*default=*/"false",
           "Read no weight values: each packed weight gets its format's type "
           "and size and zero bytes that are never written (a build whose "
           "weights come later, from a parameter file or made at load)">,
  ];
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
}

def ReorderChannels : Pass<"lathe-reorder-channels", "mlir::ModuleOp"> {
  let summary = "Permute channels so that outlier channels share quantization blocks";
  let description = [{
    Block formats (BFP, MX) give each block of consecutive input channels of
    a weight row one shared exponent, so a single outlier channel coarsens
    the whole block. Following "Accurate Block Quantization in LLMs with
    Outliers" (Trukhanov and Soloveychik, 2024), this pass sorts channels by
    magnitude so that outliers share blocks with each other.

    Candidate orders sort channels, largest first, by three magnitudes: the
    largest weight of the channel's column, the column's norm, and the
    column's norm times the root mean square of the channel's input
    (`tfm.calib_rms` from calibration), each taken as the largest over the
    linears that read the channel, normalised per linear; with
    `activations=int8` and a format with integer codes, also by the input's
    rms alone. For each set of channels that share one order, the pass
    quantizes the readers' weights in `format` under every candidate (and
    the current order) and keeps the order with the smallest calibrated
    error sum_k rms_k^2 (w_k - q(w_k))^2, plus, with int8 activations, the
    error of rounding the inputs to int8 with one scale per weight block
    (outlier input channels gathered into blocks of their own coarsen fewer
    of the others), so it never makes that error worse.

    Every permutation is folded into the weights, so it costs nothing at run
    time and leaves the model's outputs unchanged up to float rounding:
    channels that must move together (a residual stream through adds and
    RMSNorms, the gate/up outputs that feed a down projection, the values
    and outputs of attention) are found by following the IR, and the
    producing linears' rows, RMSNorm gains, embedding columns and consuming
    linears' columns move with them. Channels whose order is fixed (the
    vocabulary, rotary query/key pairs, function results) are not moved;
    attention values are permuted within each head, identically in every
    head, and only when there is one query head per KV head. Run it before
    `lathe-quantize`.
  }];
  let options = [
    Option<"format", "format", "std::string", /*default=*/"\"bfp4:block=32\"",
           "The format the weights will be quantized to, whose error the "
           "chosen order minimises (docs/formats.md)">,
    Option<"activations", "activations", "std::string", /*default=*/"\"int8\"",
           "How the products will round their inputs: int8 (as quantized "
           "builds run by default), bf16 or float (bf16 scores as float: "
           "its rounding is relative to each value)">,
  ];
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
}

def EqualizeKeyChannels : Pass<"lathe-equalize-key-channels", "mlir::ModuleOp"> {
  let summary = "Scale key RoPE pairs by powers of two so that a KV head's pairs have like magnitudes";
  let description = [{
    A block-compressed KV cache (`lathe-compile --kv=bfp4`, `bfp8`) gives
    each block of consecutive channels of a cached key row one shared
    exponent: the block's largest channel sets the rounding step of all of
    them. Keys of trained models have a few pairs of channels much larger
    than the rest (and a model rescaled exactly, keys times `2^k` and the
    queries meeting them divided by `2^k`, has them by construction), so
    most channels keep a level or two of a 4-bit mantissa.

    For every `tfm.attention` and each KV head, this pass estimates the
    mean square `K_j` of each RoPE pair of keys (from the key projection's
    rows and the calibrated rms of its inputs, `tfm.calib_rms`, as
    `lathe-reorder-key-channels` does) and multiplies the pair's key rows
    (and bias) by `2^s_j` and the matching rows of every query head of the
    KV head by `2^-s_j`, with `s_j = round(strength * log2(G / K_j) / 2)`
    for `G` the geometric mean of the head's `K_j`. Strength 1 brings every
    pair's mean square within a factor of 2 of `G`: under the cost model of
    `lathe-reorder-key-channels` (a block's step grows with its largest
    key and hits every query channel meeting the block) that is the
    optimum, but the estimates assume uncorrelated inputs, and on
    stories15M full strength made a bfp4 cache worse (KL to FP32 0.082 ->
    0.095) where half strength, the default, keeps it (0.081) and brings an
    outlier-key variant from 0.156 to 0.101. The reordering that runs
    after it groups the pairs the scales left unequal.

    RoPE turns each pair within itself, so it commutes with scaling the
    pair; every score `q . k` is the same sum of the same products, and a
    product by a power of two is exact: the model's output is unchanged to
    the bit, and nothing is added at run time. A shift that a weight cannot
    store exactly (an f16 weight that would overflow or turn subnormal) is
    moved toward 0 until it can; `max-shift` bounds it. Attention whose keys
    or queries are not `rope(linear(x) [+ bias])` with float weights of
    their own is left alone with a warning. Run it after calibration and
    before `lathe-reorder-key-channels` and `lathe-quantize`.
  }];
  let options = [
    Option<"strength", "strength", "double", /*default=*/"0.5",
           "How far, in log scale, each pair's mean square moves toward the "
           "head's geometric mean (0 to 1)">,
    Option<"maxShift", "max-shift", "int64_t", /*default=*/"16",
           "Largest power-of-two exponent of a pair's scale, either way (0 to 64)">,
  ];
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
}

def ReorderKeyChannels : Pass<"lathe-reorder-key-channels", "mlir::ModuleOp"> {
  let summary = "Permute key channels so that outlier RoPE pairs share KV-cache blocks";
  let description = [{
    A block-compressed KV cache (`lathe-compile --kv=bfp4`, `bfp8`) gives
    each block of consecutive channels of a cached key row one shared
    exponent, so a few large key channels coarsen every block they sit in.
    Following "Accurate Block Quantization in LLMs with Outliers"
    (Trukhanov and Soloveychik, 2024), this pass reorders, for every
    `tfm.attention` and each KV head, the RoPE pairs of the keys so that
    large pairs share blocks.

    Per pair it estimates the keys' mean square `K_j` and the queries'
    `Q_j` (summed over the query heads of the KV head): from the
    projections' rows and the root mean square of their input channels
    (`tfm.calib_rms` from calibration; without it, from the weights alone),
    plus the squared bias. A block's rounding step grows with its largest
    key and hits every query channel that meets the block, so an order
    costs about `sum_b max_(j in b) K_j * sum_(j in b) Q_j`. The pass keeps
    the cheapest of: the stored order; keys sorted largest first (the
    paper's); and a greedy fill that opens each block with the largest key
    left and adds the pairs that lose least there, the smallest
    `Q_j (K_max - K_j)` (the next largest keys, or, beside an outlier that
    the queries barely read, the pairs they barely read either). The
    block is the `block` option, or else that of the function's bfp KV
    cache (`!tfm.kv_quant<bfp4, block = 16>`). Pairs move as wholes and land
    interleaved, `(2j, 2j + 1)`, so a pair never straddles two blocks of an
    even size, whatever the model's RoPE layout was.

    The permutation is folded into the rows of the key projection and of
    the query projections of every query head of the KV head (and their
    `tfm.bias_add` biases), and both `tfm.rope` ops get the matching
    `pair_order` (which frequency turns which position) and the
    interleaved layout. Every score `q . k` is then the same sum of the
    same products, in another order, so it costs nothing at run time and
    changes outputs only by float rounding. Attention whose keys or queries
    are not `rope(linear(x) [+ bias])` with weights of their own is left
    alone with a warning. Run it before `lathe-quantize`.
  }];
  let options = [
    Option<"blockOption", "block", "int64_t", /*default=*/"0",
           "Values per shared exponent of the cached keys (even, dividing "
           "head_dim); 0: the block of the function's bfp KV cache">,
  ];
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
}

def EqualizeChannels : Pass<"lathe-equalize-channels", "mlir::ModuleOp"> {
  let summary = "Move magnitude between weights and activations per channel, exactly";
  let description = [{
    A channel whose weight columns are much larger than the others' (or
    whose activations are much smaller) takes over the scale of every
    quantization block it shares, and the other channels of the block round
    to a few levels. This pass picks a power-of-two scale `s_k = 2^e_k` per
    channel and folds it into the neighbouring weights: the producers of
    channel `k` (an RMSNorm gain; the rows of the up projection that
    SwiGLU multiplies, or of the value projection when every query head has
    a KV head of its own and the cache is f32) are multiplied by `s_k`, the
    columns of the linears that read it divided by `s_k`. Scaling by a power
    of two commutes with float rounding, so the unquantized model computes
    the same function to the bit; exponents are kept small enough that no
    value overflows or becomes subnormal. Channels that cannot be scaled
    alone (the residual stream, which RMSNorms read, SwiGLU's gate, RoPE
    pairs, the classifier's input, anything a packed weight touches) are
    left alone; `passes/Quantize/ChannelSpaces.h` finds them by following
    the IR.

    The scales are searched as in SmoothQuant and AWQ, on the calibration
    statistics (`tfm.calib_rms`, `tfm.calib_absmax`, required on every
    linear reading a channel that may be scaled) and the weights. With
    `a_k` a channel's input magnitude (rms or largest value), `w_k` the
    largest weight of its columns and `p_k = a_k w_k` (which exact
    rescalings of the model do not change), the candidates put the
    activation at `p_k^(1-alpha) P^alpha` (`P` the median of `p`) for
    `alpha` in 0, 1/8, ..., 1, rounded to a power of two. Blocks of
    channels (the blocks or groups of `format`) are quantized on their own,
    so each block takes, from the candidates and the identity, the one with
    the smallest calibrated error there: the error of quantizing the
    readers in `format` (`sum_k rms_k^2 (w - q(w))^2`, relative to each
    reader's weighted energy) plus, with `activations=int8` and a format
    with integer codes, the error of rounding the inputs to int8 per block
    (estimated from the block's largest rms). The pass never increases that
    error, and since the candidates depend only on quantities that exact
    rescalings preserve, a model and its rescaled copy come out alike. The
    calibration statistics are scaled along.
    Run it after calibration and before `lathe-reorder-channels` and
    `lathe-quantize`.
  }];
  let options = [
    Option<"format", "format", "std::string", /*default=*/"\"bfp4:block=32\"",
           "The format the weights will be quantized to, whose error the "
           "scales minimise (docs/formats.md)">,
    Option<"activations", "activations", "std::string", /*default=*/"\"int8\"",
           "How the products will round their inputs: int8 (as quantized "
           "builds run by default), bf16 or float (bf16 scores as float: "
           "its rounding is relative to each value)">,
  ];
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
}

def SelectFormats : Pass<"lathe-select-formats", "mlir::ModuleOp"> {
  let summary = "Choose a number format per linear weight under a bit budget";
  let description = [{
    Quantizes every `tfm.linear` weight in each candidate format (INT, FP
    and block formats alike), measures its calibrated relative output error
    (`sqrt(sum_k rms_k^2 (w - q)^2 / sum_k rms_k^2 w^2)`, with the input rms
    from `tfm.calib_rms`; plain weight error without calibration), and picks
    one format per tensor minimising the sum of squared errors while the
    average storage cost, scales included, stays within `bits` bits per
    weight. Starting from each tensor's cheapest candidate, it repeatedly
    takes the upgrade with the largest error reduction per added bit that
    still fits the budget. The choice is the weights' element types; each
    packed weight also carries `tfm.quant_error` and
    `tfm.quant_output_error`. A budget below what the cheapest candidates
    need is an error.
  }];
  let options = [
    Option<"bits", "bits", "double", /*default=*/"0.0",
           "Average bits per weight over the linear weights, scales included">,
    ListOption<"candidates", "candidates", "std::string",
               "Formats to choose from (docs/formats.md); default: mxfp4_e2m1, "
               "bfp4 (block 16 and 32), int4:group=32, fp6_4p2, mxfp6_e3m2, "
               "bfp6:block=32, mxint8, int8:group=32, bfp8:block=32">,
  ];
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
}

//===----------------------------------------------------------------------===//
// The kernel plan (dialects/KernelPlan)
//===----------------------------------------------------------------------===//

def LowerToPlan : Pass<"lathe-lower-to-plan", "mlir::ModuleOp"> {
  let summary = "Lower the tfm forward function to the kernel plan";
  let description = [{
    Rewrites every `tfm` op of `@forward` into its `plan` kernel
    (DialectConversion, one pattern per op): each activation tensor
    `tensor<?xNxf32>` becomes a buffer `!plan.buffer<N, f32>` created by
    `plan.buffer` right before the kernel that writes it, and the function
    returns the logits buffer. Weights, token ids, positions and the KV
    cache stay as they are. An op without a kernel is an error on that op.
  }];
  let dependentDialects = ["::lathe::kplan::PlanDialect"];
}

def PlanReuseBuffers : Pass<"lathe-plan-reuse-buffers", "mlir::func::FuncOp"> {
  let summary = "Let dead buffers hold later values of the same width";
  let description = [{
    Walks the kernels in order; a `plan.buffer` is replaced by a buffer of
    the same width whose last reader or writer came before it, so a step
    needs a few buffers per width instead of one per value. A buffer is
    never reused by the kernel that reads it for the last time (a product's
    output must not be its input), nor by the kernel after that (a backend
    may run the two in one launch, as the CUDA target runs an add_rms_norm's
    add in the product before it), and the returned buffer is never freed.
  }];
}

def PlanActivations : Pass<"lathe-plan-activations", "mlir::func::FuncOp"> {
  let summary = "Choose each product's activation precision";
  let description = [{
    With `precision=int8`, every `plan.matmul`, `plan.matmuls` and
    `plan.logits` whose weights all have a format with integer codes (INT8,
    INT4, BFP8, BFP4, MXINT8, MXFP4: runtime/formats `hasIntegerCodes`)
    gets `activations = #plan.activations<int8>`, the others
    `#plan.activations<FALLBACK>` (`fallback`: float, the reference
    numerics, or bf16). With `max-int8-width=W`, products of inputs wider
    than W take the fallback too (the cuda target holds an int8 input row
    in shared memory). With `precision=bf16` or `precision=float`, every
    product gets that precision. With `max-bf16-width=W`, products of
    inputs wider than W that would take bf16 keep float (the cuda target
    stages a bf16-rounded input row in shared memory). Every
    `plan.attention` gets the precision of products that cannot take int8
    (`precision`, or `fallback` where that is int8): with bf16 its queries
    are rounded to bfloat16 before their products with the cached keys.
  }];
  let options = [
    Option<"precision", "precision", "std::string", /*default=*/"\"int8\"",
           "int8 (where the weight format allows it), bf16 or float">,
    Option<"fallback", "fallback", "std::string", /*default=*/"\"float\"",
           "what products that cannot take int8 get: float or bf16">,
    Option<"maxInt8Width", "max-int8-width", "int64_t", /*default=*/"0",
           "widest input that takes int8 activations (0: any)">,
    Option<"maxBf16Width", "max-bf16-width", "int64_t", /*default=*/"0",
           "widest input that takes bf16 activations (0: any)">,
  ];
}

def PlanGroupMatmuls : Pass<"lathe-plan-group-matmuls", "mlir::func::FuncOp"> {
  let summary = "Run consecutive products of one input as one job";
  let description = [{
    Consecutive `plan.matmul` kernels that read the same input with the same
    activation precision (the q/k/v projections, the gate/up projections)
    become one `plan.matmuls`, as long as none of them writes the input or
    another one's output: the threads meet once per group instead of once
    per weight.
  }];
}

def PlanFuseAddRMSNorm : Pass<"lathe-plan-fuse-add-rms-norm", "mlir::func::FuncOp"> {
  let summary = "Fuse a residual add with the RMSNorm of its sum";
  let description = [{
    A `plan.add` followed by a `plan.rms_norm` of its output becomes one
    `plan.add_rms_norm` that writes the sum and the normalised rows in one
    pass over each row, unless the norm's output is the sum or an operand of
    the add.
  }];
}

def PlanSpecTree : Pass<"lathe-plan-spec-tree", "mlir::func::FuncOp"> {
  let summary = "Make the decode step a token-tree verification step";
  let description = [{
    Records the speculative token tree the step verifies as
    `plan.spec_tree = #plan.spec_tree<branching = [...], nodes = N>` on the
    function, with `shape` parsed by the runtime's parser
    (runtime/speculative/TreeShape.h: `4x2x2` is the branching per depth,
    `default` is `4x2x2x1x1x1x1x1`). The nodes of a tree run as one step of
    the batch form (each node sees its sequence's cache and its ancestors,
    its position is its depth past the sequence's end), so the pass checks
    that the step can take them: every `plan.attention` reads the step's
    positions and KV cache arguments, the cache holds at least N positions
    (a verification step stores every node's key and value), a token or
    position argument of static size has room for N tokens, and a
    `plan.logits` returns each node's scores. `lathe-run --speculate` runs
    this shape when given none and refuses a larger one. An error is one
    line on the function.
  }];
  let options = [
    Option<"shape", "shape", "std::string", /*default=*/"\"default\"",
           "Branching per depth, e.g. 4x2x2, or default">,
  ];
  let dependentDialects = ["::lathe::kplan::PlanDialect"];
}

def GroupLayers : Pass<"lathe-group-layers", "mlir::func::FuncOp"> {
  let summary = "Split the layers into contiguous groups that a step can run one at a time";
  let description = [{
    Records `plan.layer_groups = #plan.layer_groups<first = [...], layers =
    L>` on the step's function: the first layer of each contiguous group.
    A layered prefill (Lee et al., "From Tokens to Layers", 2025) runs a
    new prompt one group per iteration while the running sequences decode,
    carrying its hidden state between groups; the HLS backend may size
    on-chip buffers by the same groups. With `groups=N` the L layers form
    N groups as even as can be (the first L mod N take one more layer);
    with `bytes=B` each group takes layers while its weights stay within B
    bytes (in their storage formats, scales included), and a layer above B
    is a group of its own, with a warning.

    A layer begins with the kernel that writes the input of the product
    computing its attention's queries (passes/Plan/LayerStarts.h): its
    attention norm, or the add_rms_norm that also finishes the previous
    layer's residual. Its weights are those its kernels read up to the next
    layer's first kernel (the last layer's up to the classifier); the
    embedding runs in the first group, the classifier in the last. The
    serializer records each group's first step in the artifact's schedule
    (docs/artifact.md). Run it last, after the passes that move kernels.
    An error is one line on the function.
  }];
  let options = [
    Option<"groups", "groups", "int64_t", /*default=*/"0",
           "Number of groups (0: not given)">,
    Option<"bytes", "bytes", "int64_t", /*default=*/"0",
           "Most weight bytes per group (0: not given)">,
  ];
  let dependentDialects = ["::lathe::kplan::PlanDialect"];
}

def HlsSchedule : Pass<"lathe-hls-schedule", "mlir::func::FuncOp"> {
  let summary = "Schedule the step for an FPGA: loop pragmas and memory interfaces as attributes";
  let description = [{
    Records how the HLS code generator (lathe-compile --target=hls) lays
    the step out on an FPGA, as typed attributes that it lowers last into
    pragmas:

    - `plan.hls = #plan.hls_loop<ii = I, unroll = U>` on every product
      (`plan.matmul`, `plan.matmuls`, `plan.logits`): the target II of its
      pipelined loops, and the rows it computes at once: the largest
      divisor of its weights' rows that is at most `unroll`. On every
      other kernel (`plan.embedding`, `plan.rms_norm`, `plan.add_rms_norm`,
      `plan.rope`, `plan.attention`, `plan.silu_mul`, `plan.bias_add`,
      `plan.add`) `#plan.hls_loop<ii = I, unroll = 1>`: the II of its
      pipelined loops (attention's softmax included).
    - `plan.hls_partitions = [#plan.hls_array_partition<...>]` on a
      product whose local arrays are read in parallel: a float product
      computing more than one row at once gets its decoded rows (`"rows"`)
      partitioned `complete` along dimension 1, a row per bank for each of
      the rows at once; an int8-activation product its rounded input
      (`"codes"`) `cyclic` along dimension 1 with a factor of its weights'
      block, the codes a block iteration multiplies one bank each.
    - `plan.hls_dataflow = #plan.hls_dataflow` on a float product whose
      two stages (decode a row group from the AXI master into the decoded
      rows; accumulate their dot products) may overlap: every weight has
      at least two row groups (the decoded rows are the one buffer
      between the stages; the input is read by the second only, the
      output written by it only, and a product's output is never its
      input). Int8-activation products have no decode stage and get none.
    - `plan.hls_interfaces = [#plan.hls_interface<...>, ...]` on the
      function: one AXI master per memory argument of the generated top
      function, each in a bundle of its own (`gmem0` weights, `gmem1`
      rotary tables, `gmem2` KV cache, `gmem3` logits), deep enough for
      what the design reads or writes there: the weights the embedding and
      the products read (in their storage formats, 64-byte aligned, in the
      order of first use), a cos and a sin table of the cache's capacity
      for each distinct set of rotary frequencies, an f32 key and value
      row per layer and position of the cache, a logit per row of the
      classifier.

    The attributes change no computation. An error is one line on the
    function.
  }];
  let options = [
    Option<"ii", "ii", "int64_t", /*default=*/"1",
           "Target initiation interval of the kernels' pipelined loops">,
    Option<"unroll", "unroll", "int64_t", /*default=*/"1",
           "Most rows a product computes at once">,
  ];
  let dependentDialects = ["::lathe::kplan::PlanDialect"];
}

#endif // LATHE_PASSES
