// Error values for the runtime: loaders and parsers return Expected<T>
// instead of throwing or aborting, so that every bad input reaches the user
// as one clear message (see STYLE.md, "Errors").
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace lathe {

/// A failure with a message meant for the user, e.g.
/// "model.lathe: tensor 'layers.3.wq' runs past the end of the file".
class Error {
public:
  explicit Error(std::string message) : message_(std::move(message)) {}
  const std::string &message() const { return message_; }

private:
  std::string message_;
};

/// Either a value or an Error. Check with `if (!e)` before dereferencing.
template <typename T> class [[nodiscard]] Expected {
public:
  Expected(T value) : storage_(std::move(value)) {}
  Expected(Error error) : storage_(std::move(error)) {}

  explicit operator bool() const { return storage_.index() == 0; }
  T &operator*() { return std::get<0>(storage_); }
  const T &operator*() const { return std::get<0>(storage_); }
  T *operator->() { return &std::get<0>(storage_); }
  const T *operator->() const { return &std::get<0>(storage_); }
  const Error &error() const { return std::get<1>(storage_); }
  T take() { return std::move(std::get<0>(storage_)); }

private:
  std::variant<T, Error> storage_;
};

/// Expected<void>: success or an Error.
class [[nodiscard]] Status {
public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), failed_(true) {}
  static Status ok() { return {}; }
  explicit operator bool() const { return !failed_; }
  const Error &error() const { return error_; }

private:
  Error error_{""};
  bool failed_ = false;
};

} // namespace lathe
