//===- TransformerDialect.td - the tfm dialect -------------*- tablegen -*-===//
//
// `tfm` describes a transformer decoder at graph level: embedding lookup,
// RMSNorm, linear layers, rotary embedding, attention over a KV cache,
// SwiGLU and residual adds, and the final logits. Weights are constants in
// the IR whose element type names their number format, so that passes
// rewrite formats in place and never keep decisions in side tables.
//
//===----------------------------------------------------------------------===//

#ifndef LATHE_TRANSFORMER_DIALECT
#define LATHE_TRANSFORMER_DIALECT

include "mlir/IR/OpBase.td"

def Transformer_Dialect : Dialect {
  let name = "tfm";
  let summary = "Graph-level transformer decoder operations";
  let description = [{
    The `tfm` dialect models one forward step of a Llama-family decoder over
    a variable number of tokens (`tensor<?x...>` activations, one row per
    token) together with a KV cache. A decode step and a prefill step are the
    same IR with a different number of rows.
  }];
  let cppNamespace = "::lathe::tfm";
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
}

class Transformer_Op<string mnemonic, list<Trait> traits = []>
    : Op<Transformer_Dialect, mnemonic, traits>;

#endif // LATHE_TRANSFORMER_DIALECT
