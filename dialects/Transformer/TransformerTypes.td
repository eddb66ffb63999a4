//===- TransformerTypes.td - tfm types ---------------------*- tablegen -*-===//

#ifndef LATHE_TRANSFORMER_TYPES
#define LATHE_TRANSFORMER_TYPES

include "TransformerDialect.td"
include "TransformerAttrs.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

class Transformer_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<Transformer_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

//===----------------------------------------------------------------------===//
// Quantized weight formats. Each is the element type of a weight tensor, e.g.
// tensor<288x288x!tfm.bfp<mantissa = 4, block = 32>>; the tfm.weight's value
// then holds the packed bytes (docs/formats.md) as a 1-D i8 tensor. Each type
// names its format in the text form that runtime/formats parses.
//===----------------------------------------------------------------------===//

def Transformer_QuantizedTypeInterface : TypeInterface<"QuantizedTypeInterface"> {
  let cppNamespace = "::lathe::tfm";
  let description = [{
    A packed number format for weights. `getFormatName` returns the
    canonical format text (`bfp4:block=32`, `mxfp6_e3m2`, `fp6_4p2`,
    `int4:group=32:asym`, ...) that `lathe::formats::parseFormatSpec` reads.
  }];
  let methods = [
    InterfaceMethod<"The canonical format name.", "std::string", "getFormatName">,
  ];
}

def Transformer_BfpType : Transformer_Type<"Bfp", "bfp",
    [DeclareTypeInterfaceMethods<Transformer_QuantizedTypeInterface>]> {
  let summary = "Block floating point: a shared 8-bit exponent per block";
  let description = [{
    `!tfm.bfp<mantissa = 4, block = 32>`: blocks of `block` values (16, 32
    or 64) along each row share one exponent; each value keeps a `mantissa`-bit
    (8, 6 or 4) signed mantissa.
  }];
  let parameters = (ins "int64_t":$mantissa, "int64_t":$block);
  let assemblyFormat = "`<` `mantissa` `=` $mantissa `,` `block` `=` $block `>`";
  let genVerifyDecl = 1;
}

def Transformer_MxType : Transformer_Type<"Mx", "mx",
    [DeclareTypeInterfaceMethods<Transformer_QuantizedTypeInterface>]> {
  let summary = "OCP Microscaling: 32 elements share an E8M0 scale";
  let description = [{
    `!tfm.mx<fp6_e3m2>`: OCP MX v1.0 blocks of 32 elements of the given
    element format (int8, fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1)
    with one power-of-two scale per block.
  }];
  let parameters = (ins "MxElement":$element);
  let assemblyFormat = "`<` $element `>`";
}

def Transformer_Fp6SplitType : Transformer_Type<"Fp6Split", "fp6_4p2",
    [DeclareTypeInterfaceMethods<Transformer_QuantizedTypeInterface>]> {
  let summary = "FP6 E3M2 in the 4+2 bit-split layout";
  let description = [{
    `!tfm.fp6_4p2<group = 128>`: FP6 E3M2 codes stored as a 4-bit plane and
    a 2-bit plane so that kernels read aligned words (ZeroQuant(4+2),
    FP6-LLM), with a float scale per group of `group` values along a row;
    `group = 0` keeps one scale per row (per output channel).
  }];
  let parameters = (ins "int64_t":$group);
  let assemblyFormat = "`<` `group` `=` $group `>`";
  let genVerifyDecl = 1;
}

def Transformer_IntType : Transformer_Type<"Int", "int",
    [DeclareTypeInterfaceMethods<Transformer_QuantizedTypeInterface>]> {
  let summary = "Group-wise integer quantization";
  let description = [{
    `!tfm.int<bits = 4, group = 32, symmetric = true>`: `bits`-bit integers
    (8 or 4) with a float scale (and, when not symmetric, a zero point) per
    group of `group` values (32, 64 or 128) along a row.
  }];
  let parameters = (ins "int64_t":$bits, "int64_t":$group, "bool":$symmetric);
  let assemblyFormat = [{
    `<` `bits` `=` $bits `,` `group` `=` $group `,` `symmetric` `=` $symmetric `>`
  }];
  let genVerifyDecl = 1;
}

def Transformer_KVQuantType : Transformer_Type<"KVQuant", "kv_quant"> {
  let summary = "A compressed KV-cache row format";
  let description = [{
    `!tfm.kv_quant<bfp4, block = 16>` as the element type of a
    `!tfm.kv_cache` stores each row of keys and values in blocks of `block`
    values along head_dim: `int8` with a float32 scale per block (the block
    is head_dim: one scale per token row and KV head), `bfp8`/`bfp4` with a
    shared 8-bit exponent per block and 8/4-bit mantissas
    (docs/formats.md, "KV cache formats"). KIVI kinds also carry their key
    group (tokens sharing each channel's scale) and f32 window:
    `!tfm.kv_quant<int4, block = 16, group = 32, window = 32>`; the group is
    0 (and not printed) for the other kinds, which may have a window of
    recent tokens kept in f32: `!tfm.kv_quant<bfp4, block = 16, window = 8>`
    (0, not printed: none).
  }];
  let parameters = (ins "KVQuantKind":$kind, "int64_t":$block,
                        DefaultValuedParameter<"int64_t", "0">:$keyGroup,
                        DefaultValuedParameter<"int64_t", "0">:$window);
  let builders = [
    TypeBuilder<(ins "KVQuantKind":$kind, "int64_t":$block), [{
      return $_get($_ctxt, kind, block, 0, 0);
    }]>
  ];
  // `, group = G` and `, window = R`, each when not 0: two optional groups
  // of the declarative format would both start with a comma, and the
  // parser would take any comma for the first.
  let assemblyFormat = [{
    `<` $kind `,` `block` `=` $block `` custom<KvQuantOptions>($keyGroup, $window) `>`
  }];
  let genVerifyDecl = 1;
}

def Transformer_KVCacheType : Transformer_Type<"KVCache", "kv_cache"> {
  let summary = "Keys and values of every layer for one sequence";
  let description = [{
    `!tfm.kv_cache<layers = 6, kv_heads = 6, head_dim = 48, capacity = 256, f32>`
    holds, per layer, `capacity` positions of keys and of values, each
    `kv_heads * head_dim` wide. Attention writes the new rows and reads the
    prefix; the element type is the storage format: f32, f16, bf16 or a
    `!tfm.kv_quant` whose block divides head_dim.
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
