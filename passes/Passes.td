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
    `tfm.logits`, the embedding table and norm gains stay as they are) into
    the format named by `format`, e.g. `bfp4:block=32`, `mxfp6_e3m2`,
    `fp6_4p2`, `int4:group=32:asym` (docs/formats.md). The new `tfm.weight`
    has the format as its element type and the packed bytes, produced by
    runtime/formats, as its value. Weights already packed are left alone.
  }];
  let options = [
    Option<"format", "format", "std::string", /*default=*/"\"bfp8:block=32\"",
           "Format of the packed weights (docs/formats.md)">,
  ];
  let dependentDialects = ["::lathe::tfm::TransformerDialect"];
}

#endif // LATHE_PASSES
