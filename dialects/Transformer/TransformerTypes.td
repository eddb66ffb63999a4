//===- TransformerTypes.td - tfm types ---------------------*- tablegen -*-===//

#ifndef LATHE_TRANSFORMER_TYPES
#define LATHE_TRANSFORMER_TYPES

include "TransformerDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

class Transformer_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<Transformer_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

def Transformer_KVCacheType : Transformer_Type<"KVCache", "kv_cache"> {
  let summary = "Keys and values of every layer for one sequence";
  let description = [{
    `!tfm.kv_cache<layers = 6, kv_heads = 6, head_dim = 48, capacity = 256, f32>`
    holds, per layer, `capacity` positions of keys and of values, each
    `kv_heads * head_dim` wide. Attention writes the new rows and reads the
    prefix; the element type is the storage format.
  }];
  let parameters = (ins "int64_t":$layers, "int64_t":$kvHeads,
                        "int64_t":$headDim, "int64_t":$capacity,
                        "::mlir::Type":$elementType);
  let assemblyFormat = [{
    `<` `layers` `=` $layers `,` `kv_heads` `=` $kvHeads `,`
        `head_dim` `=` $headDim `,` `capacity` `=` $capacity `,`
        $elementType `>`
  }];
  let genVerifyDecl = 1;
}

#endif // LATHE_TRANSFORMER_TYPES
