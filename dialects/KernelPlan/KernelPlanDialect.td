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
    may ask for it.
  }];
}

#endif // LATHE_KERNEL_PLAN_DIALECT
