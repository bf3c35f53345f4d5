// bench_export_ceiling: the ceiling of a bulk export (bench/export.sh). Streams the stored JSON of
// every live resource out of the store's own table, through the same driver and SQLite settings
// as the server (a fresh connection), into NDJSON, on one thread, and prints what it did:
//   RESULT resources=N bytes=B seconds=S cpu_s=C
// (seconds: wall time; cpu_s: user + system CPU time of the process over the same span).
// Usage: bench_export_ceiling sqlite:PATH OUT MODE
// With PRAGMAS set in the environment, those statements run on the connection first (for
// what-if runs, e.g. PRAGMAS='PRAGMA cache_size=-2000' for SQLite's default page cache).
// MODE:
//   ceiling   `SELECT body FROM resource WHERE deleted = 0` (the table's own order, as the export
//             reads it), each body and a newline appended to a 1 MiB buffer written to the file
//             OUT with write(2): the raw cost of reading the stored JSON and writing it to a file.
//   read      the same SELECT, bytes counted, nothing written (the database's share).
//   split     `SELECT type, body ...` in the same order, each body to its type's 1 MiB buffer and
//             file OUT/TYPE.ndjson (OUT a folder): the ceiling with the export's files by type.
//   exporter  the export's loop without the server (src/store/sql_resource_store.cc Export and
//             src/bulk/bulk_export.cc RunJob as of 37aa07e): `SELECT type, id, version,
//             last_updated, deleted, body ...`, the type looked up in a std::unordered_set of
//             std::string, the row copied into std::strings, passed through a std::function, and
//             written with std::ofstream `<<` (1 MiB pubsetbuf) to OUT/TYPE-1.ndjson.
//   ordered   `SELECT body FROM resource WHERE deleted = 0 ORDER BY type, id` to one file as in
//             `ceiling`: the order of the export before 37aa07e (one SELECT per type, in id
//             order), which it keeps below the system level (patient filters).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "db/database.h"

namespace {

struct Writer {  // write(2) in 1 MiB blocks
  int fd;
  std::string buffer;
  size_t written = 0;
  explicit Writer(int f) : fd(f) { buffer.reserve(1 << 20); }
  bool Flush() {
    size_t off = 0;
    while (off < buffer.size()) {
      ssize_t n = ::write(fd, buffer.data() + off, buffer.size() - off);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    written += buffer.size();
    buffer.clear();
    return true;
  }
  bool Add(std::string_view line) {
    buffer.append(line);
    buffer.push_back('\n');
    return buffer.size() < (1 << 20) || Flush();
  }
};

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int Fail(const char* what) {
  std::fprintf(stderr, "bench_export_ceiling: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bench_export_ceiling sqlite:PATH OUT ceiling|read|by-type\n");
    return 2;
  }
  std::string mode = argv[3];
  auto db = fhirstone::db::Database::Open(argv[1]);
  if (!db) return Fail("cannot open the database");
  auto lease = (*db)->Acquire();
  if (!lease) return Fail("no connection");
  fhirstone::db::Connection& conn = **lease;
  if (const char* pragmas = std::getenv("PRAGMAS"); pragmas && *pragmas)
    if (!conn.Execute(pragmas)) return Fail("PRAGMAS failed");
  long resources = 0;
  size_t bytes = 0;
  auto start = std::chrono::steady_clock::now();
  double cpu0 = CpuSeconds();
  if (mode == "ceiling" || mode == "read" || mode == "ordered") {
    int fd = -1;
    if (mode != "read") {
      fd = ::open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return Fail("cannot write OUT");
    }
    Writer out(fd);
    auto stmt = conn.Prepare(mode == "ordered"
                                 ? "SELECT body FROM resource WHERE deleted = 0 ORDER BY type, id"
                                 : "SELECT body FROM resource WHERE deleted = 0");
    if (!stmt) return Fail("prepare failed");
    while (true) {
      auto row = (*stmt)->Step();
      if (!row) return Fail("step failed");
      if (!*row) break;
      std::string_view body = (*stmt)->ColumnText(0);
      ++resources;
      if (fd >= 0) {
        if (!out.Add(body)) return Fail("write failed");
      } else {
        bytes += body.size() + 1;
      }
    }
    (*stmt)->Reset();
    if (fd >= 0) {
      if (!out.Flush() || ::close(fd) != 0) return Fail("write failed");
      bytes = out.written;
    }
  } else if (mode == "split") {
    std::filesystem::create_directories(argv[2]);
    std::map<std::string, Writer, std::less<>> files;
    auto stmt = conn.Prepare("SELECT type, body FROM resource WHERE deleted = 0");
    if (!stmt) return Fail("prepare failed");
    while (true) {
      auto row = (*stmt)->Step();
      if (!row) return Fail("step failed");
      if (!*row) break;
      std::string_view type = (*stmt)->ColumnText(0);
      auto it = files.find(type);
      if (it == files.end()) {
        std::string path = std::filesystem::path(argv[2]) / (std::string(type) + ".ndjson");
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return Fail("cannot write a file in OUT");
        it = files.emplace(std::string(type), Writer(fd)).first;
      }
      if (!it->second.Add((*stmt)->ColumnText(1))) return Fail("write failed");
      ++resources;
    }
    (*stmt)->Reset();
    for (auto& [type, w] : files) {
      if (!w.Flush() || ::close(w.fd) != 0) return Fail("write failed");
      bytes += w.written;
    }
  } else if (mode == "exporter") {
    std::filesystem::create_directories(argv[2]);
    struct Row {
      std::string type, id, body;
      int64_t version = 0, last_updated = 0;
      bool deleted = false;
    };
    struct Output {
      std::unique_ptr<char[]> buffer;
      std::ofstream file;
    };
    std::map<std::string, Output> outputs;
    std::function<bool(const Row&)> emit = [&](const Row& r) {
      Output& o = outputs[r.type];
      if (!o.file.is_open()) {
        o.buffer.reset(new char[1 << 20]);
        o.file.rdbuf()->pubsetbuf(o.buffer.get(), 1 << 20);
        o.file.open(std::filesystem::path(argv[2]) / (r.type + "-1.ndjson"),
                    std::ios::binary | std::ios::trunc);
        if (!o.file) return false;
      }
      o.file << r.body << '\n';
      bytes += r.body.size() + 1;
      ++resources;
      return true;
    };
    std::unordered_set<std::string> wanted;
    auto list = conn.Prepare("SELECT DISTINCT type FROM resource");
    if (!list) return Fail("prepare failed");
    while (true) {
      auto row = (*list)->Step();
      if (!row) return Fail("step failed");
      if (!*row) break;
      wanted.emplace((*list)->ColumnText(0));
    }
    (*list)->Reset();
    auto tx = fhirstone::db::Transaction::Begin(conn, /*write=*/false);
    if (!tx) return Fail("begin failed");
    auto stmt = conn.Prepare(
        "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body FROM resource r "
        "WHERE r.deleted = 0");
    if (!stmt) return Fail("prepare failed");
    while (true) {
      auto row = (*stmt)->Step();
      if (!row) return Fail("step failed");
      if (!*row) break;
      std::string_view type = (*stmt)->ColumnText(0);
      if (!wanted.count(std::string(type))) continue;
      Row r;
      r.type = std::string(type);
      r.id = std::string((*stmt)->ColumnText(1));
      r.version = (*stmt)->ColumnInt(2);
      r.last_updated = (*stmt)->ColumnInt(3);
      r.deleted = (*stmt)->ColumnInt(4) != 0;
      r.body = std::string((*stmt)->ColumnText(5));
      if (!emit(r)) return Fail("write failed");
    }
    (*stmt)->Reset();
    if (!tx->Commit()) return Fail("commit failed");
    for (auto& [type, o] : outputs) {
      o.file.close();
      if (!o.file) return Fail("write failed");
    }
  } else {
    return Fail("unknown mode");
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("RESULT resources=%ld bytes=%zu seconds=%.3f cpu_s=%.3f\n", resources, bytes, seconds,
              CpuSeconds() - cpu0);
  return 0;
}
