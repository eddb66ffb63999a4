#include "runtime/formats/FormatSpec.h"

#include <array>
#include <charconv>
#include <optional>
#include <vector>

namespace lathe::formats {

namespace {

struct MxName {
  std::string_view element; // as in "mx:fp6_e3m2"
  FormatKind kind;
};

constexpr std::array<MxName, 6> kMxNames = {{
    {"int8", FormatKind::MXINT8},
    {"fp8_e4m3", FormatKind::MXFP8_E4M3},
    {"fp8_e5m2", FormatKind::MXFP8_E5M2},
    {"fp6_e3m2", FormatKind::MXFP6_E3M2},
    {"fp6_e2m3", FormatKind::MXFP6_E2M3},
    {"fp4_e2m1", FormatKind::MXFP4_E2M1},
}};

constexpr std::string_view kKnownFormats =
    "bfp8, bfp6, bfp4, mxint8, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, "
    "mxfp6_e2m3, mxfp4_e2m1 (or mxfp4), fp6_4p2, int8, int4";

bool isBfpBlock(int n) { return n == 16 || n == 32 || n == 64; }
bool isGroup(int n) { return n == 32 || n == 64 || n == 128; }

std::vector<std::string_view> splitParts(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon - start));
    if (colon == std::string_view::npos)
      break;
    start = colon + 1;
  }
  return parts;
}

std::optional<int> parsePositive(std::string_view digits) {
  int value = 0;
  const char *end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, value);
  if (ec != std::errc() || ptr != end || value <= 0)
    return std::nullopt;
  return value;
}

} // namespace

bool FormatSpec::operator==(const FormatSpec &other) const {
  if (kind != other.kind)
    return false;
  switch (kind) {
  case FormatKind::BFP:
    return mantissaBits == other.mantissaBits && blockSize == other.blockSize;
  case FormatKind::FP6_4P2:
    return perChannel == other.perChannel &&
           (perChannel || blockSize == other.blockSize);
  case FormatKind::INT8:
  case FormatKind::INT4:
    return blockSize == other.blockSize && symmetric == other.symmetric;
  default: // MX: everything is fixed by the kind
    return blockSize == other.blockSize;
  }
}

bool isMicroscaling(FormatKind kind) {
  for (const MxName &name : kMxNames)
    if (name.kind == kind)
      return true;
  return false;
}

MxElement mxElementOf(FormatKind kind) {
  switch (kind) {
  case FormatKind::MXFP8_E4M3: return MxElement::FP8_E4M3;
  case FormatKind::MXFP8_E5M2: return MxElement::FP8_E5M2;
  case FormatKind::MXFP6_E3M2: return MxElement::FP6_E3M2;
  case FormatKind::MXFP6_E2M3: return MxElement::FP6_E2M3;
  case FormatKind::MXFP4_E2M1: return MxElement::FP4_E2M1;
  default: return MxElement::INT8;
  }
}

bool hasIntegerCodes(const FormatSpec &spec) {
  if (!validateFormatSpec(spec))
    return false;
  switch (spec.kind) {
  case FormatKind::INT8:
  case FormatKind::INT4:
  case FormatKind::MXINT8:
  case FormatKind::MXFP4_E2M1:
    return true;
  case FormatKind::BFP:
    return spec.mantissaBits == 8 || spec.mantissaBits == 4;
  default:
    return false;
  }
}

Status validateFormatSpec(const FormatSpec &spec) {
  const std::string block = std::to_string(spec.blockSize);
  switch (spec.kind) {
  case FormatKind::BFP:
    if (spec.mantissaBits != 8 && spec.mantissaBits != 6 &&
        spec.mantissaBits != 4)
      return Error("bfp: mantissa bits must be 8, 6 or 4, got " +
                   std::to_string(spec.mantissaBits));
    if (!isBfpBlock(spec.blockSize))
      return Error("bfp: block size must be 16, 32 or 64, got " + block);
    return Status::ok();
  case FormatKind::FP6_4P2:
    if (!spec.perChannel && !isGroup(spec.blockSize))
      return Error("fp6_4p2: group size must be 32, 64 or 128 (or per "
                   "channel), got " + block);
    return Status::ok();
  case FormatKind::INT8:
  case FormatKind::INT4:
    if (!isGroup(spec.blockSize))
      return Error(std::string(spec.kind == FormatKind::INT8 ? "int8" : "int4") +
                   ": group size must be 32, 64 or 128, got " + block);
    return Status::ok();
  default:
    if (!isMicroscaling(spec.kind))
      return Error("unknown format kind " +
                   std::to_string(static_cast<int>(spec.kind)));
    if (spec.blockSize != static_cast<int>(kMxBlockSize))
      return Error(formatName(spec) + ": MX blocks hold 32 values, got " + block);
    return Status::ok();
  }
}

std::string formatName(const FormatSpec &spec) {
  switch (spec.kind) {
  case FormatKind::BFP:
    return "bfp" + std::to_string(spec.mantissaBits) +
           ":block=" + std::to_string(spec.blockSize);
  case FormatKind::FP6_4P2:
    return spec.perChannel ? "fp6_4p2"
                           : "fp6_4p2:group=" + std::to_string(spec.blockSize);
  case FormatKind::INT8:
  case FormatKind::INT4:
    return std::string(spec.kind == FormatKind::INT8 ? "int8" : "int4") +
           ":group=" + std::to_string(spec.blockSize) +
           (spec.symmetric ? "" : ":asym");
  default:
    for (const MxName &name : kMxNames)
      if (name.kind == spec.kind)
        return "mx" + std::string(name.element);
    return "unknown";
  }
}

Expected<FormatSpec> parseFormatSpec(std::string_view text) {
  const std::string prefix = "format '" + std::string(text) + "': ";
  if (text.empty())
    return Error("empty format name (expected one of " +
                 std::string(kKnownFormats) + ")");
  std::vector<std::string_view> parts = splitParts(text);
  for (std::string_view part : parts)
    if (part.empty())
      return Error(prefix + "empty part between ':' separators");

  FormatSpec spec;
  size_t firstOption = 1;
  const std::string_view head = parts[0];
  if (head == "bfp8" || head == "bfp6" || head == "bfp4") {
    spec.kind = FormatKind::BFP;
    spec.mantissaBits = head[3] - '0';
  } else if (head == "fp6_4p2") {
    spec.kind = FormatKind::FP6_4P2;
    spec.perChannel = true;
  } else if (head == "int8" || head == "int4") {
    spec.kind = head == "int8" ? FormatKind::INT8 : FormatKind::INT4;
    spec.blockSize = 128;
  } else if (head == "mx") {
    if (parts.size() < 2)
      return Error(prefix + "'mx' needs an element format, e.g. mx:fp6_e3m2");
    bool found = false;
    for (const MxName &name : kMxNames)
      if (parts[1] == name.element) {
        spec.kind = name.kind;
        found = true;
      }
    if (!found)
      return Error(prefix + "unknown MX element '" + std::string(parts[1]) +
                   "' (expected int8, fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3 "
                   "or fp4_e2m1)");
    firstOption = 2;
  } else {
    // MX defines a single FP4 element format, so "mxfp4" names it alone.
    bool found = head == "mxfp4";
    if (found)
      spec.kind = FormatKind::MXFP4_E2M1;
    for (const MxName &name : kMxNames)
      if (head.size() == name.element.size() + 2 && head.substr(0, 2) == "mx" &&
          head.substr(2) == name.element) {
        spec.kind = name.kind;
        found = true;
      }
    if (!found)
      return Error(prefix + "unknown format '" + std::string(head) +
                   "' (expected one of " + std::string(kKnownFormats) + ")");
  }
  const std::string kindName(head == "mx" ? formatName(spec) : head);

  bool sawBlock = false, sawGroup = false, sawSymmetry = false;
  for (size_t i = firstOption; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    const std::string quoted = "'" + std::string(part) + "'";
    const size_t eq = part.find('=');
    const std::string_view key = part.substr(0, eq);
    const bool isInt = spec.kind == FormatKind::INT8 || spec.kind == FormatKind::INT4;
    if (key == "asym" || key == "sym") {
      if (!isInt)
        return Error(prefix + "option " + quoted + " does not apply to " +
                     kindName + " (only int8 and int4 have it)");
      if (eq != std::string_view::npos)
        return Error(prefix + "option " + quoted + " takes no value");
      if (sawSymmetry)
        return Error(prefix + "option " + quoted +
                     " repeats or contradicts an earlier sym/asym");
      sawSymmetry = true;
      spec.symmetric = key == "sym";
      continue;
    }
    if (key != "block" && key != "group")
      return Error(prefix + "unknown option " + quoted +
                   " (expected block=N, group=N, asym or sym)");
    const bool wantsBlock =
        spec.kind == FormatKind::BFP || isMicroscaling(spec.kind);
    if ((key == "block") != wantsBlock)
      return Error(prefix + "option " + quoted + " does not apply to " +
                   kindName + " (it takes " +
                   (wantsBlock ? "block=N" : "group=N") + ")");
    if (eq == std::string_view::npos)
      return Error(prefix + "option " + quoted + " needs a value, e.g. " +
                   std::string(key) + "=32");
    bool &seen = key == "block" ? sawBlock : sawGroup;
    if (seen)
      return Error(prefix + "option " + quoted + " is given twice");
    seen = true;
    const std::optional<int> value = parsePositive(part.substr(eq + 1));
    if (!value)
      return Error(prefix + "option " + quoted + " needs a positive integer");
    spec.blockSize = *value;
    spec.perChannel = false;
    std::string expected;
    if (spec.kind == FormatKind::BFP && !isBfpBlock(*value))
      expected = "16, 32 or 64";
    else if (isMicroscaling(spec.kind) && *value != 32)
      expected = "32, the only MX block size";
    else if (!wantsBlock && !isGroup(*value))
      expected = "32, 64 or 128";
    if (!expected.empty())
      return Error(prefix + std::string(part) + " is not supported by " +
                   kindName + " (expected " + expected + ")");
  }
  return spec;
}

} // namespace lathe::formats
