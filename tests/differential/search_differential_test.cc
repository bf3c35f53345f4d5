// Differential test of FHIR search (https://hl7.org/fhir/R4/search.html): for hundreds of queries
// generated from the Synthea small-10 sample, the set of ids the server answers equals the set a
// brute-force evaluation finds (FHIRPath over every loaded resource, matching rules written from
// the specification: oracle.h). The server runs in-process on port 0 over a temporary SQLite
// database; the sample is loaded with PUT (the server has no transaction support yet).
//
// Environment: FHIRSTONE_DIFF_SEED (default kDefaultSeed), FHIRSTONE_DIFF_QUERIES (default
// kDefaultQueries), FHIRSTONE_DIFF_QUERY="Type?a=b&c=d" (run only that query, as printed in a
// report), FHIRSTONE_DIFF_VERBOSE=1 (print every query with both counts). See README.md.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "common/json.h"
#include "differential/dataset.h"
#include "differential/oracle.h"
#include "differential/query_generator.h"
#include "search/registry.h"
#include "server/app.h"
#include "support/databases.h"
#include "support/http_client.h"

namespace fhirstone::differential {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kDefaultSeed = 20240611;
constexpr int kDefaultQueries = 600;
constexpr size_t kMaxReported = 25;  // mismatches printed in full
constexpr size_t kMaxIdsShown = 6;
constexpr int kSmallPage = 53;

// Query families the server is known to get wrong (see the analysis in README.md): generated
// queries with one of these features are left out of the comparison and counted as skipped, so
// that the test keeps guarding everything else until the server is fixed. Each entry names the
// rule the server breaks. Remove an entry once the server is fixed.
struct KnownServerBug {
  const char* feature;
  const char* rule;
};
// None today: the three found by this test (decimal precision bounds, decomposed accents,
// foreign absolute references) are fixed and guarded again.
constexpr std::array<KnownServerBug, 0> kKnownServerBugs = {};

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

const KnownServerBug* KnownBugOf(const GeneratedQuery& q) {
  for (const KnownServerBug& bug : kKnownServerBugs)
    if (q.Has(bug.feature)) return &bug;
  return nullptr;
}

struct ServerAnswer {
  std::set<std::string> ids;
  int64_t total = -1;
  int pages = 0;
  std::string error;  // non-empty when the server did not answer a searchset
};

// GETs the query with _count=`count` and follows the next links.
ServerAnswer Search(test::Client& client, const GeneratedQuery& q, int count) {
  ServerAnswer out;
  std::string target =
      "/fhir/" + q.Encoded() + "&_count=" + std::to_string(count) + "&_total=accurate";
  while (!target.empty()) {
    if (++out.pages > 100) {
      out.error = "more than 100 pages";
      return out;
    }
    auto response = client.Send(test::MakeRequest("GET", target));
    if (!response) {
      out.error = "no answer: " + response.error().message();
      return out;
    }
    if (response->status != 200) {
      out.error =
          "status " + std::to_string(response->status) + ": " + response->body.substr(0, 400);
      return out;
    }
    auto bundle = json::Parse(response->body);
    if (!bundle) {
      out.error = "unparsable bundle: " + bundle.error().message();
      return out;
    }
    // Every page states the same total (the first counts it, later ones count or infer it).
    if (const json::Value* total = bundle->Find("total"); total && total->is_number()) {
      int64_t stated = std::strtoll(total->as_string().c_str(), nullptr, 10);
      if (out.pages == 1) {
        out.total = stated;
      } else if (stated != out.total) {
        out.error = "Bundle.total " + std::to_string(stated) + " on page " +
                    std::to_string(out.pages) + " but " + std::to_string(out.total) + " on page 1";
        return out;
      }
    } else if (out.pages > 1 && out.total >= 0) {
      out.error = "no Bundle.total on page " + std::to_string(out.pages);
      return out;
    }
    if (const json::Value* entries = bundle->Find("entry"); entries && entries->is_array()) {
      for (const json::Value& e : entries->as_array()) {
        const json::Value* search = e.Find("search");
        if (search && search->GetString("mode") != "match") continue;
        const json::Value* resource = e.Find("resource");
        if (!resource || resource->GetString("resourceType") != q.type) {
          out.error = "an entry that is no " + q.type;
          return out;
        }
        if (!out.ids.insert(std::string(resource->GetString("id"))).second) {
          out.error = "resource " + std::string(resource->GetString("id")) + " on two pages";
          return out;
        }
      }
    }
    target.clear();
    if (const json::Value* links = bundle->Find("link"); links && links->is_array()) {
      for (const json::Value& link : links->as_array()) {
        if (link.GetString("relation") != "next") continue;
        std::string url(link.GetString("url"));
        size_t at = url.find("/fhir/");
        if (at == std::string::npos) {
          out.error = "a next link without /fhir/: " + url;
          return out;
        }
        target = url.substr(at);
      }
    }
  }
  return out;
}

std::string Sample(const std::vector<std::string>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < kMaxIdsShown; ++i) out += (i ? " " : "") + ids[i];
  if (ids.size() > kMaxIdsShown) out += " ...";
  return out;
}

class SearchDifferentialTest : public ::testing::TestWithParam<db::Dialect> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fhirstone-differential-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (app_) app_->Stop();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<server::App> app_;
};

TEST_P(SearchDifferentialTest, ServerAgreesWithBruteForceOracle) {
  auto started = std::chrono::steady_clock::now();
  auto seconds_since = [](auto t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };

  // 1. The sample, references rewritten.
  auto data = Dataset::LoadSynthea(FHIRSTONE_SOURCE_DIR "/../shared/data/synthea/small-10");
  ASSERT_TRUE(data) << data.error().message();
  const Dataset& dataset = **data;
  ASSERT_EQ(dataset.resources().size(), 3833u);  // every entry of the 12 bundles

  // 2. The server, loaded over HTTP.
  server::ServeConfig config;
  config.listen = "127.0.0.1:0";
  {
    std::unique_ptr<db::Database> fresh;  // emptied; the server opens its own
    FHIRSTONE_ASSIGN_FRESH_DATABASE(fresh, GetParam(), dir_ / "db", &config.db);
  }
  config.open = true;
  config.threads = 2;
  auto app = server::App::Start(config);
  ASSERT_TRUE(app) << app.error().message();
  app_ = std::move(app).value();
  test::Client client("127.0.0.1", app_->port(), std::chrono::milliseconds(30000));
  auto load_started = std::chrono::steady_clock::now();
  int refused = 0;
  for (const json::Value& r : dataset.resources()) {
    std::string path =
        "/fhir/" + std::string(r.GetString("resourceType")) + "/" + std::string(r.GetString("id"));
    http::Request put = test::MakeRequest("PUT", path, json::Write(r));
    put.headers.emplace_back("Content-Type", "application/fhir+json");
    auto written = client.Send(std::move(put));
    ASSERT_TRUE(written) << path << ": " << written.error().message();
    if (written->status != 201) {
      if (++refused <= 5)
        ADD_FAILURE() << "PUT " << path << " answered " << written->status << ": "
                      << written->body.substr(0, 600);
    }
  }
  ASSERT_EQ(refused, 0) << "resources refused";
  if (GetParam() == db::Dialect::kPostgres) {
    // The planner's statistics of the tables just filled, as autovacuum would gather them within
    // a minute: without them a plan may read every row for each row (a _has query ran for
    // minutes once), or not, depending on whether autovacuum came by during the load.
    auto db = db::Database::Open(config.db);
    ASSERT_TRUE(db) << db.error().message();
    auto lease = (*db)->Acquire();
    ASSERT_TRUE(lease) << lease.error().message();
    ASSERT_TRUE((*lease)->Execute("ANALYZE"));
  }
  std::printf(
      "loaded %zu resources (%d urn:uuid and %d conditional references rewritten) in %.1f s\n",
      dataset.resources().size(),
      dataset.rewritten().count("urn:uuid") ? dataset.rewritten().at("urn:uuid") : 0,
      dataset.rewritten().count("conditional") ? dataset.rewritten().at("conditional") : 0,
      seconds_since(load_started));

  // 3. The queries and the oracle.
  auto registry = search::Registry::Builtin();
  ASSERT_TRUE(registry) << registry.error().message();
  // The FHIR base as the server writes it in fullUrls ("http://127.0.0.1:PORT/fhir").
  const std::string base = app_->base_url() + "/fhir";
  Oracle oracle(**registry, dataset, base);
  uint64_t seed = EnvNumber("FHIRSTONE_DIFF_SEED", kDefaultSeed);
  int count = static_cast<int>(EnvNumber("FHIRSTONE_DIFF_QUERIES", kDefaultQueries));
  bool verbose = EnvNumber("FHIRSTONE_DIFF_VERBOSE", 0) != 0;
  std::vector<GeneratedQuery> queries;
  const char* only = std::getenv("FHIRSTONE_DIFF_QUERY");
  if (only && *only) {
    auto q = ParseDescribed(only);
    ASSERT_TRUE(q) << "FHIRSTONE_DIFF_QUERY must look like Type?name=value&...";
    queries.push_back(std::move(*q));
    verbose = true;
  } else {
    QueryGenerator generator(dataset, **registry, seed, base);
    queries = generator.Generate(count);
    ASSERT_GE(queries.size(), 300u) << "the generator yielded too few queries";
  }

  // 4. Compare.
  struct Tally {
    int run = 0;
    int non_empty = 0;
  };
  std::map<std::string, Tally> coverage;
  std::map<std::string, int> skipped_by_bug;
  int run = 0, non_empty = 0, mismatches = 0, skipped = 0;
  auto queries_started = std::chrono::steady_clock::now();
  for (const GeneratedQuery& q : queries) {
    if (const KnownServerBug* bug = KnownBugOf(q)) {
      ++skipped;
      ++skipped_by_bug[bug->feature];
      continue;
    }
    ++run;
    // Every eighth query reads small pages, so that paging is compared too.
    int page_size = run % 8 == 0 ? kSmallPage : 1000;
    ServerAnswer server = Search(client, q, page_size);
    auto expected = oracle.Evaluate(q.type, q.params);
    bool mismatch = false;
    std::string why;
    std::vector<std::string> server_only, oracle_only;
    if (!expected) {
      mismatch = true;
      why = "the oracle cannot evaluate it: " + expected.error().message();
    } else if (!server.error.empty()) {
      mismatch = true;
      why = "the server failed: " + server.error;
    } else {
      std::set_difference(server.ids.begin(), server.ids.end(), expected->begin(), expected->end(),
                          std::back_inserter(server_only));
      std::set_difference(expected->begin(), expected->end(), server.ids.begin(), server.ids.end(),
                          std::back_inserter(oracle_only));
      if (!server_only.empty() || !oracle_only.empty()) {
        mismatch = true;
        why = "the sets differ";
      } else if (server.total != static_cast<int64_t>(server.ids.size())) {
        mismatch = true;
        why = "Bundle.total " + std::to_string(server.total) + " but " +
              std::to_string(server.ids.size()) + " matches";
      }
    }
    bool has_results = expected && !expected->empty();
    if (has_results) ++non_empty;
    for (const std::string& f : q.features) {
      ++coverage[f].run;
      if (has_results) ++coverage[f].non_empty;
    }
    if (verbose)
      std::printf("%s %4zu server %4zu oracle  %s\n", mismatch ? "MISMATCH" : "ok      ",
                  server.ids.size(), expected ? expected->size() : 0, q.Describe().c_str());
    if (!mismatch) continue;
    if (static_cast<size_t>(++mismatches) > kMaxReported) continue;
    std::string features;
    for (const std::string& f : q.features) features += (features.empty() ? "" : " ") + f;
    ADD_FAILURE() << "mismatch: " << why << "\n  query:    " << q.Describe()
                  << "\n  _count:   " << page_size << " (" << server.pages << " pages)"
                  << "\n  replay:   FHIRSTONE_DIFF_QUERY='" << q.Encoded() << "'"
                  << "\n  features: " << features << "\n  server only (" << server_only.size()
                  << "): " << Sample(server_only) << "\n  oracle only (" << oracle_only.size()
                  << "): " << Sample(oracle_only) << "\n  server " << server.ids.size()
                  << ", oracle " << (expected ? expected->size() : 0);
  }

  std::printf(
      "search differential (seed %llu): %d queries run, %d with non-empty results, "
      "%d mismatches, %d skipped as known server bugs; %.1f s for the queries, %.1f s in all\n",
      static_cast<unsigned long long>(seed), run, non_empty, mismatches, skipped,
      seconds_since(queries_started), seconds_since(started));
  for (const auto& [feature, n] : skipped_by_bug)
    std::printf("  skipped (%s): %d\n", feature.c_str(), n);
  std::printf("coverage (feature: queries / with results):");
  int column = 0;
  for (const auto& [feature, t] : coverage)
    std::printf("%s%s %d/%d", column++ % 4 == 0 ? "\n  " : "   ", feature.c_str(), t.run,
                t.non_empty);
  std::printf("\n");
  if (oracle.evaluation_errors() > 0)
    std::printf("FHIRPath evaluations that failed in the oracle: %d\n", oracle.evaluation_errors());

  EXPECT_EQ(mismatches, 0);
  if (!only || !*only) {
    EXPECT_GE(run, 300);
    EXPECT_GE(non_empty * 2, run) << "fewer than half of the queries have results";
  }
}

INSTANTIATE_TEST_SUITE_P(Dialects, SearchDifferentialTest,
                         ::testing::Values(db::Dialect::kSqlite, db::Dialect::kPostgres),
                         [](const auto& info) { return test::DialectName(info.param); });

}  // namespace
}  // namespace fhirstone::differential
