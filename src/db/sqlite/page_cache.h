#pragma once

namespace fhirstone::db::sqlite {

// Installs, once per process and before SQLite initializes, a page cache that wraps SQLite's
// default one (pcache1) to spare each write transaction a scan of the whole cache. Returns
// false when SQLite had initialized already (the default cache stays, unchanged).
//
// At the end of every write transaction SQLite asks the cache to drop the pages past the end of
// the database (xTruncate). pcache1 knows only the largest page number it ever held, and a
// B-tree balance that reorders pages moves one of them through a temporary number past 1 GiB
// (the locking page): from then on each truncation scanned every slot of the cache's hash table
// and every page in it, although no page was past the end. With the 64 MiB cache of a writer
// connection that scan took about 7% of the server's time under small transactions. The wrapper
// tracks the largest number a page was created under and the pages moved past it, and asks
// pcache1 to truncate only when a page may lie past the limit.
bool InstallPageCache();

// For tests: the truncations passed on to pcache1, and those skipped.
struct PageCacheStats {
  long truncated = 0;
  long skipped = 0;
};
PageCacheStats PageCacheCounts();

}  // namespace fhirstone::db::sqlite
