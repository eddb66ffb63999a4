// Which number format a tensor is stored in, and its text form: the one
// description that a quantize pass, the artifact, kernels and command-line
// flags share. Text syntax (docs/formats.md, "Format names"):
//
//   bfp8 | bfp6 | bfp4           [:block=16|32|64]   (default 32)
//   mxint8 | mxfp8_e4m3 | mxfp8_e5m2 | mxfp6_e3m2 | mxfp6_e2m3 | mxfp4_e2m1
//                                 [:block=32]; also written mx:<element>;
//                                 mxfp4 = mxfp4_e2m1 (MX's only FP4 element)
//   fp6_4p2                       [:group=32|64|128]  (absent: one scale per row)
//   int8 | int4                   [:group=32|64|128] (default 128) [:asym|:sym]
#pragma once

#include "runtime/formats/Microscaling.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace lathe::formats {

enum class FormatKind : uint8_t {
  BFP,
  MXINT8,
  MXFP8_E4M3,
  MXFP8_E5M2,
  MXFP6_E3M2,
  MXFP6_E2M3,
  MXFP4_E2M1,
  FP6_4P2,
  INT8,
  INT4,
};

struct FormatSpec {
  FormatKind kind = FormatKind::BFP;
  int mantissaBits = 0;    // BFP only: 8, 6 or 4
  int blockSize = 32;      // BFP: 16/32/64; MX: 32; FP6_4P2, INT: group size
  bool symmetric = true;   // INT8/INT4 only
  bool perChannel = false; // FP6_4P2 only: one scale per row, blockSize unused

  /// Compares the fields that matter for `kind` only.
  bool operator==(const FormatSpec &other) const;
};

bool isMicroscaling(FormatKind kind);

/// The MX element format of an MX kind (MXINT8 -> INT8, ...). Only
/// meaningful when isMicroscaling(kind).
MxElement mxElementOf(FormatKind kind);

/// Whether the format's codes are small integers times a block scale (INT8,
/// INT4, BFP8, BFP4, MXINT8, MXFP4, whose E2M1 values are halves of
/// integers up to 12): products with such weights may round their input to
/// int8 and use integer dot products (int8 activations).
bool hasIntegerCodes(const FormatSpec &spec);

/// Checks a spec built in code, e.g. "bfp: block size must be 16, 32 or 64,
/// got 48".
Status validateFormatSpec(const FormatSpec &spec);

/// Parses "bfp4:block=32", "mxfp6_e3m2", "fp6_4p2:group=128",
/// "int4:group=32:asym", ... Errors quote the text and name the bad part:
/// "format 'bfp4:block=48': block=48 is not supported by bfp4 (expected 16,
/// 32 or 64)".
Expected<FormatSpec> parseFormatSpec(std::string_view text);

/// The canonical text of a valid spec; parseFormatSpec(formatName(s)) == s.
std::string formatName(const FormatSpec &spec);

} // namespace lathe::formats
