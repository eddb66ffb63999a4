// An error a client gets back: an HTTP status and OpenAI's error body,
// {"error": {"message", "type", "param", "code"}}, so that OpenAI clients
// raise it with its message.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lathe::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param; // the request field at fault; "" none
  std::string code;  // e.g. "context_length_exceeded"; "" none

  nlohmann::json body() const {
    auto orNull = [](const std::string &s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
    return {{"error",
             {{"message", message}, {"type", type}, {"param", orNull(param)}, {"code", orNull(code)}}}};
  }
};

/// A 400 invalid_request_error about `param`.
inline ApiError badRequest(std::string message, std::string param = "", std::string code = "") {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param),
                  std::move(code)};
}

} // namespace lathe::server
