#include "ops/metrics.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <charconv>
#include <cmath>
#include <functional>

namespace fhirstone::ops {
namespace {

bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// A sample value: shortest round-trip text, Prometheus spellings for the special values.
void AppendNumber(double v, std::string& out) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, end);
  }
}

void AppendNumber(uint64_t v, std::string& out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// HELP text escapes backslash and line feed; label values also escape the double quote.
void AppendEscaped(std::string_view s, bool quote, std::string& out) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendHeader(const FamilyBase& family, std::string& out) {
  out += "# HELP ";
  out += family.name();
  out += ' ';
  AppendEscaped(family.help(), false, out);
  out += "\n# TYPE ";
  out += family.name();
  out += ' ';
  out += TypeName(family.type());
  out += '\n';
}

// {a="x",b="y"} plus an optional extra label (the histogram's le); nothing when empty.
void AppendLabels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                  std::string_view extra_name, std::string_view extra_value, std::string& out) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    AppendEscaped(values[i], true, out);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

uint64_t HashValues(std::span<const std::string_view> values) {
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  std::hash<std::string_view> hasher;
  for (std::string_view v : values) {
    h ^= hasher(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

}  // namespace

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return kBuckets;
}

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.cumulative.reserve(bounds_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running + counts_[bounds_.size()].load(std::memory_order_relaxed);
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- Family ----

namespace {

// Builds the metric of a series: histograms take their family's bounds.
template <typename M>
struct MetricHolder {
  explicit MetricHolder(const std::vector<double>&) {}
  M metric;
};

template <>
struct MetricHolder<Histogram> {
  explicit MetricHolder(const std::vector<double>& bounds) : metric(bounds) {}
  Histogram metric;
};

}  // namespace

template <typename M>
struct Family<M>::Series {
  Series(uint64_t h, std::span<const std::string_view> v, const std::vector<double>& bounds)
      : hash(h), values(v.begin(), v.end()), holder(bounds) {}

  bool Matches(uint64_t h, std::span<const std::string_view> v) const {
    if (h != hash || v.size() != values.size()) return false;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] != values[i]) return false;
    }
    return true;
  }

  uint64_t hash;
  std::vector<std::string> values;
  MetricHolder<M> holder;
};

template <typename M>
Family<M>::Family(std::string name, std::string help, MetricType type,
                  std::vector<std::string> label_names, std::vector<double> bounds,
                  size_t max_series)
    : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
      bounds_(std::move(bounds)),
      max_series_(this->label_names().empty() ? 1 : std::max<size_t>(1, max_series)) {
  size_t slots = std::bit_ceil(2 * max_series_);
  mask_ = slots - 1;
  slots_.reset(new std::atomic<Series*>[slots]);
  for (size_t i = 0; i < slots; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
  std::vector<std::string_view> other(this->label_names().size(), "_other");
  overflow_ = std::make_unique<Series>(0, other, bounds_);
}

template <typename M>
Family<M>::~Family() {
  for (size_t i = 0; i <= mask_; ++i) delete slots_[i].load(std::memory_order_relaxed);
}

template <typename M>
M& Family<M>::Overflow() {
  if (!overflow_used_.load(std::memory_order_relaxed))
    overflow_used_.store(true, std::memory_order_relaxed);
  return overflow_->holder.metric;
}

template <typename M>
M& Family<M>::Get(std::span<const std::string_view> values) {
  if (values.size() != label_names().size()) {
    assert(false && "label values do not match the family's label names");
    return Overflow();
  }
  uint64_t h = HashValues(values);
  size_t i = static_cast<size_t>(h) & mask_;
  std::unique_ptr<Series> fresh;  // built at most once, when the values are new
  for (size_t probes = 0; probes <= mask_; ++probes, i = (i + 1) & mask_) {
    Series* s = slots_[i].load(std::memory_order_acquire);
    if (s != nullptr) {
      if (s->Matches(h, values)) return s->holder.metric;
      continue;
    }
    // An empty slot ends the probe: the values are new. Reserve room, then publish.
    if (!fresh) {
      if (size_.fetch_add(1, std::memory_order_relaxed) >= max_series_) {
        size_.fetch_sub(1, std::memory_order_relaxed);
        return Overflow();
      }
      fresh = std::make_unique<Series>(h, values, bounds_);
    }
    Series* expected = nullptr;
    if (slots_[i].compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      return fresh.release()->holder.metric;
    }
    // Another thread filled the slot first: it may have published the same values.
    if (expected->Matches(h, values)) {
      size_.fetch_sub(1, std::memory_order_relaxed);
      return expected->holder.metric;
    }
  }
  // Unreachable: the table is kept at most half full.
  if (fresh) size_.fetch_sub(1, std::memory_order_relaxed);
  return Overflow();
}

namespace {

void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Counter& c, std::string& out) {
  out += family.name();
  AppendLabels(family.label_names(), values, {}, {}, out);
  out += ' ';
  AppendNumber(c.Value(), out);
  out += '\n';
}

void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values, const Gauge& g,
                  std::string& out) {
  out += family.name();
  AppendLabels(family.label_names(), values, {}, {}, out);
  out += ' ';
  AppendNumber(g.Value(), out);
  out += '\n';
}

void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Histogram& hist, std::string& out) {
  Histogram::Snapshot snap = hist.Read();
  const auto& bounds = hist.bounds();
  std::string le;
  for (size_t i = 0; i < bounds.size(); ++i) {
    le.clear();
    AppendNumber(bounds[i], le);
    out += family.name();
    out += "_bucket";
    AppendLabels(family.label_names(), values, "le", le, out);
    out += ' ';
    AppendNumber(snap.cumulative[i], out);
    out += '\n';
  }
  out += family.name();
  out += "_bucket";
  AppendLabels(family.label_names(), values, "le", "+Inf", out);
  out += ' ';
  AppendNumber(snap.count, out);
  out += '\n';
  out += family.name();
  out += "_sum";
  AppendLabels(family.label_names(), values, {}, {}, out);
  out += ' ';
  AppendNumber(snap.sum, out);
  out += '\n';
  out += family.name();
  out += "_count";
  AppendLabels(family.label_names(), values, {}, {}, out);
  out += ' ';
  AppendNumber(snap.count, out);
  out += '\n';
}

}  // namespace

template <typename M>
void Family<M>::Render(std::string& out) const {
  AppendHeader(*this, out);
  std::vector<const Series*> series;
  for (size_t i = 0; i <= mask_; ++i) {
    if (const Series* s = slots_[i].load(std::memory_order_acquire)) series.push_back(s);
  }
  std::sort(series.begin(), series.end(),
            [](const Series* a, const Series* b) { return a->values < b->values; });
  if (overflow_used_.load(std::memory_order_relaxed)) series.push_back(overflow_.get());
  for (const Series* s : series) RenderSeries(*this, s->values, s->holder.metric, out);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----

namespace {

// A label-less gauge read from a callback at render time.
class CallbackGauge : public FamilyBase {
 public:
  CallbackGauge(std::string name, std::string help, std::function<double()> read)
      : FamilyBase(std::move(name), std::move(help), MetricType::kGauge, {}),
        read_(std::move(read)) {}

  void Render(std::string& out) const override {
    AppendHeader(*this, out);
    out += name();
    out += ' ';
    AppendNumber(read_ ? read_() : 0.0, out);
    out += '\n';
  }

 private:
  std::function<double()> read_;
};

bool ValidNames(std::string_view name, const std::vector<std::string>& label_names,
                MetricType type) {
  if (!IsMetricName(name)) return false;
  for (size_t i = 0; i < label_names.size(); ++i) {
    if (!IsLabelName(label_names[i])) return false;
    if (type == MetricType::kHistogram && label_names[i] == "le") return false;
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == label_names[i]) return false;
    }
  }
  return true;
}

std::vector<std::string> NamesOf(const Labels& labels) {
  std::vector<std::string> names;
  names.reserve(labels.size());
  for (const auto& [name, value] : labels) names.push_back(name);
  return names;
}

std::vector<std::string_view> ValuesOf(const Labels& labels) {
  std::vector<std::string_view> values;
  values.reserve(labels.size());
  for (const auto& [name, value] : labels) values.push_back(value);
  return values;
}

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

template <typename M>
Family<M>& Registry::Add(std::string_view name, std::string_view help, MetricType type,
                         std::vector<std::string> label_names, std::vector<double> bounds,
                         FamilyOptions options) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  bounds.erase(
      std::remove_if(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }),
      bounds.end());
  std::lock_guard lock(mu_);
  bool valid = ValidNames(name, label_names, type);
  if (valid) {
    auto it = families_.find(name);
    if (it == families_.end()) {
      auto family = std::make_unique<Family<M>>(std::string(name), std::string(help), type,
                                                std::move(label_names), std::move(bounds),
                                                options.max_series);
      Family<M>* raw = family.get();
      families_.emplace(std::string(name), std::move(family));
      return *raw;
    }
    auto* existing = dynamic_cast<Family<M>*>(it->second.get());
    if (existing != nullptr && existing->type() == type && existing->label_names() == label_names) {
      return *existing;
    }
  }
  assert(false && "metric registration contradicts an earlier one or breaks the naming rules");
  auto family =
      std::make_unique<Family<M>>(std::string(name), std::string(help), type,
                                  std::move(label_names), std::move(bounds), options.max_series);
  Family<M>* raw = family.get();
  detached_.push_back(std::move(family));
  return *raw;
}

Family<Counter>& Registry::Counters(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names, FamilyOptions options) {
  return Add<Counter>(name, help, MetricType::kCounter, std::move(label_names), {}, options);
}

Family<Gauge>& Registry::Gauges(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names, FamilyOptions options) {
  return Add<Gauge>(name, help, MetricType::kGauge, std::move(label_names), {}, options);
}

Family<Histogram>& Registry::Histograms(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds, FamilyOptions options) {
  return Add<Histogram>(name, help, MetricType::kHistogram, std::move(label_names),
                        std::move(bounds), options);
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  auto values = ValuesOf(labels);
  return Counters(name, help, NamesOf(labels)).Get(values);
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  auto values = ValuesOf(labels);
  return Gauges(name, help, NamesOf(labels)).Get(values);
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help,
                                  const Labels& labels, std::vector<double> bounds) {
  auto values = ValuesOf(labels);
  return Histograms(name, help, NamesOf(labels), std::move(bounds)).Get(values);
}

void Registry::AddCallbackGauge(std::string_view name, std::string_view help,
                                std::function<double()> read) {
  std::lock_guard lock(mu_);
  if (!IsMetricName(name) || families_.count(name) != 0) {
    assert(false && "callback gauge name is invalid or taken");
    return;
  }
  families_.emplace(std::string(name), std::make_unique<CallbackGauge>(
                                           std::string(name), std::string(help), std::move(read)));
}

std::string Registry::RenderPrometheus() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, family] : families_) family->Render(out);
  return out;
}

http::Response MetricsResponse(const Registry& registry) {
  http::Response response;
  response.status = 200;
  response.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  response.SetHeader("Cache-Control", "no-store");
  response.body = registry.RenderPrometheus();
  return response;
}

// ---- ServerMetrics ----

ServerMetrics::ServerMetrics(Registry& registry)
    : http_requests(registry.Counters("fhirstone_http_requests_total",
                                      "HTTP requests answered, by interaction, resource type and "
                                      "status.",
                                      {"interaction", "resource_type", "status"})),
      http_request_duration(registry.Histograms("fhirstone_http_request_duration_seconds",
                                                "Time from request to response, by interaction.",
                                                {"interaction"})),
      db_time(registry.Histograms("fhirstone_db_time_seconds",
                                  "Time spent in the database, by store operation (read, search, "
                                  "history, write).",
                                  {"operation"})),
      tokens_issued(registry.Counters("fhirstone_tokens_issued_total",
                                      "Access tokens issued, by grant type.", {"grant_type"})),
      tokens_refused(registry.Counters("fhirstone_tokens_refused_total",
                                       "Token requests refused, by reason (the OAuth error code).",
                                       {"reason"})),
      rate_limited(registry.Counters("fhirstone_rate_limited_total",
                                     "Requests refused with 429, by limit kind (client, user, ip, "
                                     "concurrent, search).",
                                     {"kind"})),
      audit_backlog(
          registry.GetGauge("fhirstone_audit_backlog", "Audit events waiting to be persisted.")) {}

void ServerMetrics::RecordRequest(std::string_view interaction, std::string_view resource_type,
                                  int status, int64_t duration_micros) {
  char buf[12];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, status);
  std::string_view status_text(buf, static_cast<size_t>(end - buf));
  http_requests.Get({interaction, resource_type, status_text}).Inc();
  http_request_duration.Get({interaction}).ObserveMicros(duration_micros);
}

}  // namespace fhirstone::ops
