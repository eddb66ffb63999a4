// The server's counters, gauges and histograms, and their Prometheus text
// exposition (GET /metrics). Thread-safe: the engine thread records, HTTP
// threads record request outcomes and render.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lathe::server {

/// A Prometheus histogram: cumulative counts at fixed upper bounds.
class Histogram {
public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  /// Appends "<name>_bucket{le=...}", "_sum" and "_count" lines.
  void render(const std::string &name, std::string &out) const;
  uint64_t count() const { return count_; }

private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_; // per bucket, not cumulative; last: +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
public:
  Metrics();

  /// A request answered: `outcome` is its finish reason ("stop", "length",
  /// "cancelled") or "error" for one refused or failed.
  void requestEnded(const std::string &endpoint, const std::string &outcome);
  void promptTokens(int64_t n);
  void generatedTokens(int64_t n);
  void timeToFirstToken(double seconds);
  void timeBetweenTokens(double seconds);
  /// After each step: its duration and tokens, and the state it left.
  void step(double seconds, int64_t tokens, int64_t running, int64_t waiting,
            int64_t kvBlocksUsed, int64_t kvBlocks);
  /// A speculative step: the sequences whose trees it verified, the
  /// drafted tokens among them and those accepted.
  void speculation(int64_t verified, int64_t drafted, int64_t accepted);

  /// The Prometheus text format (version 0.0.4).
  std::string render() const;

private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_; // (endpoint, outcome)
  uint64_t promptTokens_ = 0, generatedTokens_ = 0, steps_ = 0, stepTokens_ = 0;
  uint64_t verified_ = 0, drafted_ = 0, accepted_ = 0;
  bool speculating_ = false;
  int64_t running_ = 0, waiting_ = 0, kvBlocksUsed_ = 0, kvBlocks_ = 0;
  Histogram ttft_, tbt_, stepSeconds_;
};

} // namespace lathe::server
