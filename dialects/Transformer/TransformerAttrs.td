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

def Transformer_MxElement : I32EnumAttr<"MxElement", "OCP MX element format", [
    I32EnumAttrCase<"int8", 0>, I32EnumAttrCase<"fp8_e4m3", 1>,
    I32EnumAttrCase<"fp8_e5m2", 2>, I32EnumAttrCase<"fp6_e3m2", 3>,
    I32EnumAttrCase<"fp6_e2m3", 4>, I32EnumAttrCase<"fp4_e2m1", 5>]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::lathe::tfm";
}

// The compressed KV-cache formats (runtime/formats/KvFormat.h).
def Transformer_KVQuantKind : I32EnumAttr<"KVQuantKind", "compressed KV-cache format", [
    I32EnumAttrCase<"int8", 0>, I32EnumAttrCase<"bfp8", 1>, I32EnumAttrCase<"bfp4", 2>,
    I32EnumAttrCase<"int4", 3>, I32EnumAttrCase<"int2", 4>]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::lathe::tfm";
}

#endif // LATHE_TRANSFORMER_ATTRS
