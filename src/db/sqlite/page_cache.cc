#include "db/sqlite/page_cache.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <vector>

namespace fhirstone::db::sqlite {
namespace {

sqlite3_pcache_methods2 base;  // SQLite's default page cache

std::atomic<long> truncated{0};
std::atomic<long> skipped{0};

// One cache (one pager's). SQLite calls a cache's methods from one thread at a time.
struct Cache {
  sqlite3_pcache* inner = nullptr;
  // No page was created under a larger number (an upper bound: also counts lookups that could
  // create a page and found it).
  unsigned created_max = 0;
  // The numbers, above created_max, that pages were moved to (xRekey) and still have.
  std::vector<unsigned> moved;
};

Cache* Of(sqlite3_pcache* p) { return reinterpret_cast<Cache*>(p); }

int Init(void*) { return base.xInit(base.pArg); }
void Shutdown(void*) {
  if (base.xShutdown) base.xShutdown(base.pArg);
}

sqlite3_pcache* Create(int page_size, int extra, int purgeable) {
  sqlite3_pcache* inner = base.xCreate(page_size, extra, purgeable);
  if (!inner) return nullptr;
  auto* c = new (std::nothrow) Cache;
  if (!c) {
    base.xDestroy(inner);
    return nullptr;
  }
  c->inner = inner;
  return reinterpret_cast<sqlite3_pcache*>(c);
}

void Cachesize(sqlite3_pcache* p, int n) { base.xCachesize(Of(p)->inner, n); }
int Pagecount(sqlite3_pcache* p) { return base.xPagecount(Of(p)->inner); }

sqlite3_pcache_page* Fetch(sqlite3_pcache* p, unsigned key, int create) {
  Cache* c = Of(p);
  if (create && key > c->created_max) c->created_max = key;
  return base.xFetch(c->inner, key, create);
}

void Unpin(sqlite3_pcache* p, sqlite3_pcache_page* page, int discard) {
  base.xUnpin(Of(p)->inner, page, discard);
}

void Rekey(sqlite3_pcache* p, sqlite3_pcache_page* page, unsigned from, unsigned to) {
  Cache* c = Of(p);
  if (auto it = std::find(c->moved.begin(), c->moved.end(), from); it != c->moved.end())
    c->moved.erase(it);
  if (to > c->created_max) c->moved.push_back(to);
  base.xRekey(c->inner, page, from, to);
}

void Truncate(sqlite3_pcache* p, unsigned limit) {
  Cache* c = Of(p);
  bool beyond = c->created_max >= limit;
  for (unsigned key : c->moved) beyond = beyond || key >= limit;
  if (!beyond) {  // no page has a number at or past `limit`
    skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  truncated.fetch_add(1, std::memory_order_relaxed);
  base.xTruncate(c->inner, limit);
  if (limit > 0 && c->created_max >= limit) c->created_max = limit - 1;
  std::erase_if(c->moved, [&](unsigned key) { return key >= limit; });
}

void Destroy(sqlite3_pcache* p) {
  Cache* c = Of(p);
  base.xDestroy(c->inner);
  delete c;
}

void Shrink(sqlite3_pcache* p) {
  if (base.xShrink) base.xShrink(Of(p)->inner);
}

}  // namespace

bool InstallPageCache() {
  static const bool installed = [] {
    if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &base) != SQLITE_OK || !base.xCreate) return false;
    static sqlite3_pcache_methods2 methods;
    methods.iVersion = 1;
    methods.pArg = nullptr;
    methods.xInit = Init;
    methods.xShutdown = Shutdown;
    methods.xCreate = Create;
    methods.xCachesize = Cachesize;
    methods.xPagecount = Pagecount;
    methods.xFetch = Fetch;
    methods.xUnpin = Unpin;
    methods.xRekey = Rekey;
    methods.xTruncate = Truncate;
    methods.xDestroy = Destroy;
    methods.xShrink = Shrink;
    return sqlite3_config(SQLITE_CONFIG_PCACHE2, &methods) == SQLITE_OK;
  }();
  return installed;
}

PageCacheStats PageCacheCounts() {
  return {truncated.load(std::memory_order_relaxed), skipped.load(std::memory_order_relaxed)};
}

}  // namespace fhirstone::db::sqlite
