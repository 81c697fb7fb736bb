// An HTTP-facing failure: status code plus OpenAI's error fields, thrown by the server's parsers.
#pragma once

#include <stdexcept>
#include <string>

namespace nanovllm::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "")
      : std::runtime_error(std::move(message)), status_(status), param_(std::move(param)) {}

  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the offending request field, if known

 private:
  int status_;
  std::string param_;
};

// OpenAI's error "type" for a status code (invalid_request_error, authentication_error, ...).
const char* error_type(int status);

// {"error": {"message", "type", "param", "code"}} as a compact JSON string.
std::string error_body(int status, const std::string& message, const std::string& param = "");

}  // namespace nanovllm::server
