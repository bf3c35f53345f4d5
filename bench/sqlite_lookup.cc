// bench_sqlite_lookup: the database ceiling for read-by-id. Point lookups of random ids on the
// store's own table through the same driver (prepared statement, one connection per thread).
// Prints lookups per second in total. Usage: bench_sqlite_lookup sqlite:PATH COUNT THREADS SECONDS
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "db/database.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bench_sqlite_lookup sqlite:PATH COUNT THREADS SECONDS\n");
    return 2;
  }
  long count = std::atol(argv[2]);
  int threads = std::atoi(argv[3]);
  double seconds = std::atof(argv[4]);
  auto db = fhirstone::db::Database::Open(argv[1]);
  if (!db) return 1;
  std::atomic<long> total{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto lease = (*db)->Acquire();
      auto stmt = (*lease)->Prepare(
          "SELECT version, last_updated, deleted, body FROM resource WHERE type = ? AND id = ?");
      std::mt19937_64 rng(t + 1);
      long n = 0;
      size_t bytes = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        std::string id = "p" + std::to_string(1 + rng() % count);
        (*stmt)->BindText(1, "Patient");
        (*stmt)->BindText(2, id);
        if (*(*stmt)->Step()) bytes += (*stmt)->ColumnText(3).size();
        (*stmt)->Reset();
        ++n;
      }
      total += n + static_cast<long>(bytes == 0);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  std::printf("%.0f\n", total.load() / seconds);
  return 0;
}
