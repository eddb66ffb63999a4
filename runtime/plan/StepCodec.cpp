#include "runtime/plan/StepCodec.h"

#include <fmt/format.h>
#include <limits>
#include <type_traits>

namespace lathe::plan {
namespace {

template <typename T> struct IsList : std::false_type {};
template <> struct IsList<std::vector<uint32_t>> : std::true_type {};

/// The largest value each enum field may hold.
constexpr int64_t maxEnumValue(RopeLayout) { return 1; }
constexpr int64_t maxEnumValue(Activations) { return 2; }

template <typename T> void put(FlatStep &out, const T &value) {
  if constexpr (std::is_same_v<T, float>) {
    out.floats.push_back(value);
  } else if constexpr (IsList<T>::value) {
    out.ints.push_back(static_cast<int64_t>(value.size()));
    out.ints.insert(out.ints.end(), value.begin(), value.end());
  } else if constexpr (std::is_enum_v<T>) {
    out.ints.push_back(static_cast<int64_t>(value));
  } else {
    out.ints.push_back(static_cast<int64_t>(value));
  }
}

struct Reader {
  std::span<const int64_t> ints;
  std::span<const float> floats;
  size_t i = 0, f = 0;

  Expected<int64_t> next() {
    if (i >= ints.size())
      return Error("too few integer fields");
    return ints[i++];
  }
  Status read(uint32_t &out) {
    Expected<int64_t> v = next();
    if (!v)
      return v.error();
    if (*v < 0 || *v > std::numeric_limits<uint32_t>::max())
      return Error(fmt::format("field value {} out of range", *v));
    out = static_cast<uint32_t>(*v);
    return Status::ok();
  }
  Status read(float &out) {
    if (f >= floats.size())
      return Error("too few float fields");
    out = floats[f++];
    return Status::ok();
  }
  template <typename E> std::enable_if_t<std::is_enum_v<E>, Status> read(E &out) {
    Expected<int64_t> v = next();
    if (!v)
      return v.error();
    if (*v < 0 || *v > maxEnumValue(E{}))
      return Error(fmt::format("unknown enum value {}", *v));
    out = static_cast<E>(*v);
    return Status::ok();
  }
  Status read(std::vector<uint32_t> &out) {
    Expected<int64_t> n = next();
    if (!n)
      return n.error();
    if (*n < 0 || static_cast<uint64_t>(*n) > ints.size() - i)
      return Error(fmt::format("list of {} values runs past the fields", *n));
    out.resize(static_cast<size_t>(*n));
    for (uint32_t &v : out)
      if (Status s = read(v); !s)
        return s;
    return Status::ok();
  }
};

template <typename S> Expected<Step> build(std::span<const int64_t> ints,
                                           std::span<const float> floats) {
  S step{};
  Reader reader{ints, floats};
  Status status = Status::ok();
  std::apply(
      [&](auto &...field) {
        ((status = status ? reader.read(field) : status), ...);
      },
      step.fields());
  if (!status)
    return Error(std::string(S::kName) + ": " + status.error().message());
  if (reader.i != ints.size() || reader.f != floats.size())
    return Error(std::string(S::kName) + ": too many fields");
  return Step{std::move(step)};
}

/// Calls fn(std::type_identity<S>) for the step kind named `kind`; false
/// when there is none.
template <typename Fn, size_t I = 0> bool withKind(std::string_view kind, Fn &&fn) {
  if constexpr (I == std::variant_size_v<Step>) {
    return false;
  } else {
    using S = std::variant_alternative_t<I, Step>;
    if (kind == S::kName) {
      fn(std::type_identity<S>{});
      return true;
    }
    return withKind<Fn, I + 1>(kind, std::forward<Fn>(fn));
  }
}

} // namespace

FlatStep flatten(const Step &step) {
  return std::visit(
      [](auto s) {
        FlatStep out;
        out.kind = decltype(s)::kName;
        std::apply([&](const auto &...field) { (put(out, field), ...); }, s.fields());
        return out;
      },
      step);
}

Expected<Step> unflatten(std::string_view kind, std::span<const int64_t> ints,
                         std::span<const float> floats) {
  Expected<Step> result = Error(fmt::format("unknown kernel kind '{}'", kind));
  withKind(kind, [&](auto type) {
    using S = typename decltype(type)::type;
    result = build<S>(ints, floats);
  });
  return result;
}

std::span<const FieldInfo> stepFields(std::string_view kind) {
  std::span<const FieldInfo> fields;
  withKind(kind, [&](auto type) {
    using S = typename decltype(type)::type;
    fields = S::kFields;
  });
  return fields;
}

} // namespace lathe::plan
