// Metrics for /metrics: counters, gauges and histograms kept in a Registry that renders the
// Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format).
//
// A metric family has a name, a help text and a fixed list of label names; each distinct list of
// label values is one series (a Counter, Gauge or Histogram), created on first use and kept until
// the Registry goes. Recording never takes a lock: a series is a few atomics, and Family::Get()
// finds a series in the family's fixed-size open-addressing table with atomic loads only (a new
// series is published with one compare-exchange). The Registry's mutex is taken only to add a
// family and to render. A family holds at most `max_series` series; label values beyond that
// land in one overflow series whose every label value is "_other", so that label values a client
// can influence never grow memory without bound.
//
// Ownership: the Registry owns every family and series; references stay valid for its lifetime.
// Thread-safe throughout. Callers on hot paths keep the Family& (or the series&) they get once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"

namespace fhirstone::ops {

enum class MetricType { kCounter, kGauge, kHistogram };

// Label name/value pairs of one series, e.g. {{"grant_type", "authorization_code"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The latency buckets in seconds: 0.5 ms .. 10 s.
const std::vector<double>& DefaultLatencyBuckets();

// A monotonically increasing count.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (e.g. a backlog).
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted in fixed buckets (upper bounds, inclusive), plus their sum.
class Histogram {
 public:
  // REQUIRES: `bounds` sorted ascending, finite, and outliving the histogram.
  explicit Histogram(const std::vector<double>& bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // NaN is ignored.
  void Observe(double value);
  void ObserveMicros(int64_t micros) { Observe(static_cast<double>(micros) / 1e6); }

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, observations <= bound
    uint64_t count = 0;                // all observations (the +Inf bucket)
    double sum = 0;
  };
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1, the last is +Inf
  std::atomic<double> sum_{0};
};

class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends # HELP, # TYPE and every series, sorted by label values.
  virtual void Render(std::string& out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)) {}

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// The series of one metric, one per list of label values. M is Counter, Gauge or Histogram.
template <typename M>
class Family : public FamilyBase {
 public:
  // Built by the Registry.
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::vector<double> bounds, size_t max_series);
  ~Family() override;

  // The series with these label values, in the order of label_names(); created on first use.
  // Lock-free; allocates only when it creates a series. Values of the wrong count give the
  // overflow series (a programming error, asserted in debug builds).
  M& Get(std::span<const std::string_view> values);
  M& Get(std::initializer_list<std::string_view> values) {
    return Get(std::span<const std::string_view>(values.begin(), values.size()));
  }
  // The number of series (overflow excluded).
  size_t size() const { return size_.load(std::memory_order_relaxed); }

  void Render(std::string& out) const override;

 private:
  struct Series;
  M& Overflow();

  std::vector<double> bounds_;  // histograms only
  size_t max_series_;
  size_t mask_;  // the table has mask_ + 1 slots, a power of two >= 2 * max_series_
  std::unique_ptr<std::atomic<Series*>[]> slots_;
  std::atomic<size_t> size_{0};
  std::unique_ptr<Series> overflow_;
  std::atomic<bool> overflow_used_{false};
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

struct FamilyOptions {
  size_t max_series = 4096;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The family `name`, added on first call; later calls with the same name, type and label names
  // return the same family. Names follow Prometheus ([a-zA-Z_:][a-zA-Z0-9_:]*, labels
  // [a-zA-Z_][a-zA-Z0-9_]*, "le" reserved for histograms). A call that contradicts an earlier
  // one (other type or labels) or breaks the naming rules is a programming error: asserted in
  // debug builds; release builds return a detached family that works but is never rendered.
  Family<Counter>& Counters(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names = {}, FamilyOptions options = {});
  Family<Gauge>& Gauges(std::string_view name, std::string_view help,
                        std::vector<std::string> label_names = {}, FamilyOptions options = {});
  // `bounds`: bucket upper bounds, ascending (sorted and deduplicated here).
  Family<Histogram>& Histograms(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names = {},
                                std::vector<double> bounds = DefaultLatencyBuckets(),
                                FamilyOptions options = {});

  // One series by name and labels: the family lookup takes the Registry's mutex, so call these
  // once and keep the reference (or keep the Family and call Get on the hot path).
  Counter& GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& GetHistogram(std::string_view name, std::string_view help, const Labels& labels = {},
                          std::vector<double> bounds = DefaultLatencyBuckets());

  // A label-less gauge whose value `read` gives at render time (e.g. a queue length kept
  // elsewhere). `read` is called under the Registry's mutex, from the rendering thread; it must
  // be thread-safe and must outlive the Registry (or the renders).
  void AddCallbackGauge(std::string_view name, std::string_view help, std::function<double()> read);

  // Every family, sorted by name, in the text format 0.0.4.
  std::string RenderPrometheus() const;

 private:
  FamilyBase* Find(std::string_view name, MetricType type,
                   const std::vector<std::string>& label_names, bool* conflict);
  template <typename M>
  Family<M>& Add(std::string_view name, std::string_view help, MetricType type,
                 std::vector<std::string> label_names, std::vector<double> bounds,
                 FamilyOptions options);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
  std::vector<std::unique_ptr<FamilyBase>> detached_;  // refused registrations, never rendered
};

// The answer to GET /metrics: 200, Content-Type text/plain; version=0.0.4.
http::Response MetricsResponse(const Registry& registry);

// The metrics the server records, registered once under their fixed names.
struct ServerMetrics {
  explicit ServerMetrics(Registry& registry);

  // fhirstone_http_requests_total{interaction,resource_type,status}
  Family<Counter>& http_requests;
  // fhirstone_http_request_duration_seconds{interaction}
  Family<Histogram>& http_request_duration;
  // fhirstone_db_time_seconds{operation}: time spent in the database, per store operation (read,
  // search, history, write: a write waits for its group commit)
  Family<Histogram>& db_time;
  // fhirstone_tokens_issued_total{grant_type}
  Family<Counter>& tokens_issued;
  // fhirstone_tokens_refused_total{reason}
  Family<Counter>& tokens_refused;
  // fhirstone_rate_limited_total{kind}: kind is client, user, ip, concurrent or search
  Family<Counter>& rate_limited;
  // fhirstone_audit_backlog: audit events not yet persisted
  Gauge& audit_backlog;

  // Counts one answered request and its latency. Lock-free; no allocation once the label set
  // exists.
  void RecordRequest(std::string_view interaction, std::string_view resource_type, int status,
                     int64_t duration_micros);
};

}  // namespace fhirstone::ops
