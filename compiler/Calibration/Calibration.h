// Calibration: runs the model through the runtime's reference kernels inside
// the compiler (one executor, not two) and records, on every tfm.linear, the
// statistics of its input channels as attributes that passes read:
//
//   tfm.calib_rms    = dense<...> : tensor<Kxf32>   root mean square per channel
//   tfm.calib_absmax = dense<...> : tensor<Kxf32>   largest magnitude per channel
//
// Keeping them in the IR (not a side table) lets each pass run on its own
// from lathe-opt, and lets a pass that permutes channels move them along.
#pragma once

#include "runtime/support/Expected.h"
#include "runtime/engine/Generation.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "runtime/tokenizer/Tokenizer.h"

#include "mlir/IR/BuiltinOps.h"

#include <string_view>

namespace lathe::compiler {

inline constexpr const char *kCalibRmsAttr = "tfm.calib_rms";
inline constexpr const char *kCalibAbsMaxAttr = "tfm.calib_absmax";

/// A short built-in text in the style of the bundled story model, used when
/// no --calib file is given.
std::string_view defaultCalibrationText();

struct CalibrationStats {
  int64_t sequences = 0;
  int64_t tokens = 0;
};

/// Scores each non-empty line of `text` (BOS first; lines longer than the
/// context are cut into context-sized pieces) and annotates the linears.
/// At most `maxTokens` tokens are run.
Expected<CalibrationStats> calibrate(mlir::ModuleOp module, const Tokenizer &tokenizer,
                                     std::string_view text, int64_t maxTokens = 4096);
/// The same with either kind of tokenizer (a Hugging Face one adds BOS only
/// where it is configured to).
Expected<CalibrationStats> calibrate(mlir::ModuleOp module, const TextTokenizer &tokenizer,
                                     std::string_view text, int64_t maxTokens = 4096);
/// The same over lines already tokenized.
Expected<CalibrationStats> calibrateOn(mlir::ModuleOp module,
                                       const std::vector<TextSequence> &sequences,
                                       int64_t maxTokens);

} // namespace lathe::compiler
