#pragma once

#include <cstddef>

namespace fhirstone::db::sqlite {

// The name of a SQLite VFS (registered on the first call; thread-safe) that wraps the default
// one and keeps savepoint and statement journals in memory up to 64 MiB each, spilling to a
// temporary file of the default VFS beyond. Everything else goes to the default VFS unchanged.
//
// Why: each write of a group commit runs in a savepoint, and SQLite copies the prior content of
// every page the write changes into the savepoint's journal. Past SQLite's 64 KiB in-memory
// threshold that journal is a temporary file: a small transaction wrote about 100 pages to it,
// twice what it wrote to the WAL, one system call per page. SQLite's own in-memory journal
// (a larger SQLITE_CONFIG_STMTJRNL_SPILL) is a chunk list that large journals make slow to use.
const char* JournalVfsName();

// For tests: the bytes a journal keeps in memory before it spills (default 64 MiB), and counts
// of the journals opened and of those that spilled to a file.
void SetMemoryJournalLimit(size_t bytes);
struct JournalVfsStats {
  long opened = 0;
  long spilled = 0;
  long wal_writes = 0;   // writes SQLite made to WAL files
  long wal_flushes = 0;  // writes of gathered WAL frames to the files
};
JournalVfsStats JournalVfsCounts();

}  // namespace fhirstone::db::sqlite
