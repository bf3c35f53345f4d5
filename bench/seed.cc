// bench_seed: fills a store with N synthetic Patients (ids p1..pN) through the ResourceStore, so
// that the read benchmark runs on a realistic database. Usage: bench_seed sqlite:PATH N
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/clock.h"
#include "common/json.h"
#include "db/database.h"
#include "store/sql_resource_store.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_seed sqlite:PATH COUNT\n");
    return 2;
  }
  long count = std::atol(argv[2]);
  auto db = fhirstone::db::Database::Open(argv[1]);
  if (!db) {
    std::fprintf(stderr, "%s\n", db.error().message().c_str());
    return 1;
  }
  fhirstone::SystemClock clock;
  fhirstone::RandomIdGenerator ids;
  auto store = fhirstone::store::OpenSqlResourceStore(**db, clock, ids, nullptr, "");
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message().c_str());
    return 1;
  }
  static const char* kFamilies[] = {"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia"};
  static const char* kGiven[] = {"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace"};
  for (long i = 1; i <= count; ++i) {
    std::string id = "p" + std::to_string(i);
    char birth[16];
    std::snprintf(birth, sizeof birth, "%04ld-%02ld-%02ld", 1930 + i % 90, 1 + i % 12, 1 + i % 28);
    std::string text = "{\"resourceType\":\"Patient\",\"id\":\"" + id +
                       "\",\"active\":true,\"identifier\":[{\"system\":\"urn:bench\",\"value\":\"" +
                       id + "\"}],\"name\":[{\"family\":\"" + kFamilies[i % 6] +
                       "\",\"given\":[\"" + kGiven[i % 7] + "\"]}],\"gender\":\"" +
                       (i % 2 ? "female" : "male") + "\",\"birthDate\":\"" + birth +
                       "\",\"address\":[{\"city\":\"Springfield\",\"postalCode\":\"" +
                       std::to_string(10000 + i % 89999) + "\"}]}";
    auto resource = fhirstone::json::Parse(text);
    auto written = (*store)->Update(std::move(resource).value(), std::nullopt);
    if (!written) {
      std::fprintf(stderr, "write %ld failed: %s\n", i, written.error().message().c_str());
      return 1;
    }
    if (i % 100000 == 0) std::fprintf(stderr, "seeded %ld\n", i);
  }
  return 0;
}
