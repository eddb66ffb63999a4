#include "server/Metrics.h"

#include <algorithm>
#include <fmt/format.h>

namespace lathe::server {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string &name, std::string &out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name,
                     sum_, name, count_);
}

namespace {

// Latency buckets from 1 ms to 60 s: a small model's steps take
// milliseconds, a long prompt's first token seconds.
std::vector<double> latencyBounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void header(std::string &out, const char *name, const char *type, const char *help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

/// A metric of one unlabelled value.
template <typename T>
void sample(std::string &out, const char *name, const char *type, const char *help, T value) {
  header(out, name, type, help);
  out += fmt::format("{} {}\n", name, value);
}

} // namespace

Metrics::Metrics() : ttft_(latencyBounds()), tbt_(latencyBounds()), stepSeconds_(latencyBounds()) {}

void Metrics::requestEnded(const std::string &endpoint, const std::string &outcome) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, outcome}];
}

void Metrics::promptTokens(int64_t n) {
  std::lock_guard lock(mutex_);
  promptTokens_ += n;
}

void Metrics::generatedTokens(int64_t n) {
  std::lock_guard lock(mutex_);
  generatedTokens_ += n;
}

void Metrics::timeToFirstToken(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void Metrics::timeBetweenTokens(double seconds) {
  std::lock_guard lock(mutex_);
  tbt_.observe(seconds);
}

void Metrics::step(double seconds, int64_t tokens, int64_t running, int64_t waiting,
                   int64_t kvBlocksUsed, int64_t kvBlocks) {
  std::lock_guard lock(mutex_);
  ++steps_;
  stepTokens_ += tokens;
  stepSeconds_.observe(seconds);
  running_ = running;
  waiting_ = waiting;
  kvBlocksUsed_ = kvBlocksUsed;
  kvBlocks_ = kvBlocks;
}

void Metrics::speculation(int64_t verified, int64_t drafted, int64_t accepted) {
  std::lock_guard lock(mutex_);
  speculating_ = true;
  verified_ += verified;
  drafted_ += drafted;
  accepted_ += accepted;
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  header(out, "lathe_requests_total", "counter",
         "Requests answered, by endpoint and outcome (stop, length, cancelled, error).");
  for (const auto &[key, n] : requests_)
    out += fmt::format("lathe_requests_total{{endpoint=\"{}\",outcome=\"{}\"}} {}\n", key.first,
                       key.second, n);
  sample(out, "lathe_prompt_tokens_total", "counter", "Prompt tokens admitted.", promptTokens_);
  sample(out, "lathe_generated_tokens_total", "counter", "Tokens generated.", generatedTokens_);
  sample(out, "lathe_requests_running", "gauge", "Sequences in the running batch.", running_);
  sample(out, "lathe_requests_waiting", "gauge", "Requests queued for admission.", waiting_);
  sample(out, "lathe_kv_cache_blocks_used", "gauge", "KV cache blocks held by sequences.",
         kvBlocksUsed_);
  sample(out, "lathe_kv_cache_blocks", "gauge", "KV cache blocks in all.", kvBlocks_);
  sample(out, "lathe_kv_cache_usage_ratio", "gauge", "Fraction of the KV cache blocks in use.",
         kvBlocks_ ? double(kvBlocksUsed_) / double(kvBlocks_) : 0.0);
  sample(out, "lathe_steps_total", "counter", "Batched steps run.", steps_);
  sample(out, "lathe_step_tokens_total", "counter", "Tokens carried by the steps.", stepTokens_);
  header(out, "lathe_step_seconds", "histogram", "Duration of one batched step.");
  stepSeconds_.render("lathe_step_seconds", out);
  header(out, "lathe_time_to_first_token_seconds", "histogram",
         "From a request's arrival to its first token.");
  ttft_.render("lathe_time_to_first_token_seconds", out);
  header(out, "lathe_time_between_tokens_seconds", "histogram",
         "Between consecutive tokens of a request.");
  tbt_.render("lathe_time_between_tokens_seconds", out);
  if (speculating_) {
    // Mean tokens a verification emits: (accepted + verified) / verified;
    // acceptance rate: accepted / drafted.
    sample(out, "lathe_speculative_verifications_total", "counter",
           "Token trees verified (one per speculating sequence per step).", verified_);
    sample(out, "lathe_speculative_draft_tokens_total", "counter",
           "Drafted tokens verified (tree roots not counted).", drafted_);
    sample(out, "lathe_speculative_accepted_tokens_total", "counter",
           "Drafted tokens accepted.", accepted_);
  }
  return out;
}

} // namespace lathe::server
