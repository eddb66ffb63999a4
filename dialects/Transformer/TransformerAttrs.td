//===- TransformerAttrs.td - tfm attributes ----------------*- tablegen -*-===//

#ifndef LATHE_TRANSFORMER_ATTRS
#define LATHE_TRANSFORMER_ATTRS

include "TransformerDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

// Which dimensions rotary embedding rotates together. Checkpoints differ:
// Meta/llama2.c interleave the pairs, Hugging Face splits each head in halves.
def Transformer_RopeLayout : I32EnumAttr<"RopeLayout", "rotary pair layout", [
    I32EnumAttrCase<"interleaved", 0>,
    I32EnumAttrCase<"rotate_half", 1>]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::lathe::tfm";
}

def Transformer_RopeLayoutAttr
    : EnumAttr<Transformer_Dialect, Transformer_RopeLayout, "rope_layout"> {
  let assemblyFormat = "`<` $value `>`";
}

#endif // LATHE_TRANSFORMER_ATTRS
