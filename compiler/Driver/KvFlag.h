// The --kv flag of lathe-compile: how the KV cache stores keys and values
// (runtime/formats/KvFormat.h).
//
//   --kv=f32                    (the default)
//   --kv=f16 | --kv=bf16        half the memory and the bytes attention reads
//   --kv=int8[:window=R]        int8 codes, a float32 scale per token row and KV head
//   --kv=bfp8[:block=N][:window=R]  8/4-bit mantissas sharing an exponent per
//   --kv=bfp4[:block=N][:window=R]  block of N values along head_dim (N divides head_dim)
//   --kv=int4[:group=G][:window=R]  KIVI: keys per channel over groups of G
//   --kv=int2[:group=G][:window=R]  tokens, values per token, the newest R f32
//
// window=R keeps the newest R tokens (at least) of each sequence in f32 on
// the cpu target; bfp4 has R = 8 by default there (KvFormat.h,
// kBfp4DefaultWindow), int8 and bfp8 0 (no window). The cuda target has no
// window: bfp4 gets 0 there, and an explicit window=R > 0 is an error.
//
// int8, bfp8 and bfp4 also take :equalize (the default) or :no-equalize:
// whether lathe-equalize-key-channels scales each KV head's key pairs by
// powers of two toward like magnitudes (folded exactly into the q/k
// projections); the bfp formats also :reorder (the default) or
// :no-reorder: whether lathe-reorder-key-channels then sorts the pairs so
// that large ones share blocks. Neither is part of the stored format.
#pragma once

#include "runtime/formats/KvFormat.h"
#include "runtime/support/Expected.h"

#include <string_view>

namespace lathe::compiler {

/// What --kv asks for: the cache's format and whether the key channels are
/// equalized and reordered for it.
struct KvFlag {
  formats::KvFormat format;
  bool reorderKeys = false;
  bool equalizeKeys = false;
};

/// The whole flag: `reorder` / `no-reorder` (bfp kinds only) and
/// `equalize` / `no-equalize` (int8 and bfp) taken out, each on by default
/// where it applies, the rest read by parseKvFlag. Errors quote the text:
/// "--kv=int8:reorder: reorder applies to bfp8 and bfp4 (the kinds whose
/// key channels share exponents)".
Expected<KvFlag> parseKvSpec(std::string_view text);

/// The format `text` names, its block left 0 when not given (the model's
/// head_dim decides it: resolveKvFlag). Anything else is one Error line
/// quoting the text: "--kv=f8: unknown KV format 'f8' (expected f32, f16,
/// bf16, int8, bfp8 or bfp4)".
Expected<formats::KvFormat> parseKvFlag(std::string_view text);

/// `format` (parsed from `text`) checked against the model's head_dim, its
/// default block filled in: "--kv=bfp4:block=32: block=32 does not divide
/// head_dim 48".
Expected<formats::KvFormat> resolveKvFlag(std::string_view text, formats::KvFormat format,
                                          int64_t headDim);

} // namespace lathe::compiler
