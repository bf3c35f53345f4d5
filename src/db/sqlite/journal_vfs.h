#pragma once

#include <cstddef>

namespace fhirstone::db::sqlite {

// The name of a SQLite VFS (registered on the first call; thread-safe) that wraps the default
// one. It changes three things; everything else goes to the default VFS unchanged:
// - savepoint and statement journals stay in memory up to 64 MiB each, spilling to a temporary
//   file of the default VFS beyond. Each write of a group commit runs in a savepoint, and SQLite
//   copies the prior content of every page the write changes into its journal; past SQLite's
//   64 KiB in-memory threshold that journal was a temporary file: a small transaction wrote about
//   100 pages to it, twice what it wrote to the WAL, one system call per page. (SQLite's own
//   in-memory journal, a larger SQLITE_CONFIG_STMTJRNL_SPILL, is a chunk list that large
//   journals make slow to use.)
// - the frames of a WAL are gathered and written with one system call per commit (SQLite makes
//   two per page); journal_vfs.cc says when they are written and why no reader sees a frame
//   before it is in the file. For synchronous=NORMAL or OFF and the default locking mode.
// - a database file is mapped once per process, read-only, and the mapping is shared by all its
//   connections for reads under `PRAGMA mmap_size` (SQLite's own maps it once per connection
//   and maps it again after every write by another connection, so that a read connection
//   faulted pages in again after each write). Pages are read from it without a system call,
//   those a write transaction reads too (SQLite reads them with xRead: they are copied from it).
//   A WAL file is mapped the same way: the pages of its frames (a checkpoint reads every frame
//   it copies) are copied from the mapping instead of read with a system call each.
const char* JournalVfsName();

// For tests: the bytes a journal keeps in memory before it spills (default 64 MiB), and counts
// of the journals opened and of those that spilled to a file, of WAL writes and of mappings.
void SetMemoryJournalLimit(size_t bytes);
struct JournalVfsStats {
  long opened = 0;
  long spilled = 0;
  long wal_writes = 0;        // writes SQLite made to WAL files
  long wal_flushes = 0;       // writes of gathered WAL frames to the files
  long maps_created = 0;      // shared mappings of database files made
  long mapped_fetches = 0;    // pages SQLite read through them, while CountMappedFetches(true)
  long wal_mapped_reads = 0;  // pages of WAL frames copied from the mapping of a WAL file
  long db_mapped_reads = 0;   // pages read with xRead copied from it, while CountMappedFetches
};
JournalVfsStats JournalVfsCounts();
void CountMappedFetches(bool on);

}  // namespace fhirstone::db::sqlite
