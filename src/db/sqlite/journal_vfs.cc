#include "db/sqlite/journal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace fhirstone::db::sqlite {
namespace {

constexpr const char* kVfsName = "fhirstone-journal";

std::atomic<long> opened_count{0};
std::atomic<long> spilled_count{0};
std::atomic<size_t> memory_limit{size_t{64} << 20};

sqlite3_vfs* Base(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }

// The bytes of a journal in memory. Buffers are kept for the next journals (a group commit
// opens one per transaction): fresh large allocations cost a page fault per 4 KiB.
struct Buffer {
  char* data = nullptr;
  size_t size = 0;
  size_t capacity = 0;
};

constexpr size_t kPooledBuffers = 4;
constexpr size_t kPooledCapacity = size_t{16} << 20;
std::mutex pool_mu;
std::vector<Buffer> pool;

Buffer TakeBuffer() {
  std::lock_guard lock(pool_mu);
  if (pool.empty()) return {};
  Buffer b = pool.back();
  pool.pop_back();
  return b;
}

void GiveBack(Buffer b) {
  b.size = 0;
  if (b.data && b.capacity <= kPooledCapacity) {
    std::lock_guard lock(pool_mu);
    if (pool.size() < kPooledBuffers) {
      pool.push_back(b);
      return;
    }
  }
  std::free(b.data);
}

// Makes room for `end` bytes; bytes between the old size and `end` are zero.
bool Grow(Buffer& b, size_t end) {
  if (end > b.capacity) {
    size_t capacity = std::max({end, b.capacity * 2, size_t{256} << 10});
    char* data = static_cast<char*>(std::realloc(b.data, capacity));
    if (!data) return false;
    b.data = data;
    b.capacity = capacity;
  }
  return true;
}

// A journal in memory until it would pass the limit, then a temporary file of the base VFS that
// takes the content written so far.
struct MemoryJournal {
  sqlite3_file base;  // first: SQLite sees a MemoryJournal* as a sqlite3_file*
  sqlite3_vfs* vfs;   // the base VFS, which opens the spill file
  int flags;
  Buffer bytes;
  sqlite3_file* spilled;  // nullptr until the journal passes the limit
};

MemoryJournal* Journal(sqlite3_file* file) { return reinterpret_cast<MemoryJournal*>(file); }

// Writes to a file of the base VFS at most 64 KiB at a time: the unix VFS of SQLite 3.40 masks a
// write's length with 0x1ffff, so a write whose remaining length is a multiple of 128 KiB writes
// nothing and fails with SQLITE_FULL ("database or disk is full"). SQLite's own writes are
// pages; the first write of a spill is the whole journal.
int WriteInPieces(sqlite3_file* file, const void* in, int amount, sqlite3_int64 offset) {
  constexpr int kPiece = 64 << 10;
  const char* bytes = static_cast<const char*>(in);
  for (int done = 0; done < amount;) {
    int n = std::min(kPiece, amount - done);
    if (int rc = file->pMethods->xWrite(file, bytes + done, n, offset + done); rc != SQLITE_OK)
      return rc;
    done += n;
  }
  return SQLITE_OK;
}

int Spill(MemoryJournal* j) {
  auto* file = static_cast<sqlite3_file*>(sqlite3_malloc(j->vfs->szOsFile));
  if (!file) return SQLITE_NOMEM;
  std::memset(file, 0, static_cast<size_t>(j->vfs->szOsFile));
  int rc = j->vfs->xOpen(j->vfs, nullptr, file, j->flags, nullptr);
  if (rc != SQLITE_OK) {
    if (file->pMethods) file->pMethods->xClose(file);
    sqlite3_free(file);
    return rc;
  }
  if (j->bytes.size > 0)
    rc = WriteInPieces(file, j->bytes.data, static_cast<int>(j->bytes.size), 0);
  if (rc != SQLITE_OK) {
    file->pMethods->xClose(file);
    sqlite3_free(file);
    return rc;
  }
  j->spilled = file;
  GiveBack(j->bytes);
  j->bytes = {};
  spilled_count.fetch_add(1, std::memory_order_relaxed);
  return SQLITE_OK;
}

int Close(sqlite3_file* file) {
  MemoryJournal* j = Journal(file);
  int rc = SQLITE_OK;
  if (j->spilled) {
    rc = j->spilled->pMethods->xClose(j->spilled);
    sqlite3_free(j->spilled);
    j->spilled = nullptr;
  }
  GiveBack(j->bytes);
  j->bytes = {};
  return rc;
}

int Read(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  MemoryJournal* j = Journal(file);
  if (j->spilled) return j->spilled->pMethods->xRead(j->spilled, out, amount, offset);
  const auto size = static_cast<sqlite3_int64>(j->bytes.size);
  const sqlite3_int64 available = std::clamp<sqlite3_int64>(size - offset, 0, amount);
  if (available > 0) std::memcpy(out, j->bytes.data + offset, static_cast<size_t>(available));
  if (available < amount) {  // as a file: the rest reads as zeros, and SQLite is told
    std::memset(static_cast<char*>(out) + available, 0, static_cast<size_t>(amount - available));
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int Write(sqlite3_file* file, const void* in, int amount, sqlite3_int64 offset) {
  MemoryJournal* j = Journal(file);
  const auto end = static_cast<size_t>(offset) + static_cast<size_t>(amount);
  if (!j->spilled && end > memory_limit.load(std::memory_order_relaxed)) {
    if (int rc = Spill(j); rc != SQLITE_OK) return rc;
  }
  if (j->spilled) return WriteInPieces(j->spilled, in, amount, offset);
  Buffer& b = j->bytes;
  if (end > b.size) {
    if (!Grow(b, end)) return SQLITE_IOERR_NOMEM;
    if (static_cast<size_t>(offset) > b.size)  // a gap reads as zeros, as in a file
      std::memset(b.data + b.size, 0, static_cast<size_t>(offset) - b.size);
    b.size = end;
  }
  std::memcpy(b.data + offset, in, static_cast<size_t>(amount));
  return SQLITE_OK;
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  MemoryJournal* j = Journal(file);
  if (j->spilled) return j->spilled->pMethods->xTruncate(j->spilled, size);
  if (static_cast<size_t>(size) < j->bytes.size) j->bytes.size = static_cast<size_t>(size);
  return SQLITE_OK;
}

int Sync(sqlite3_file* file, int flags) {
  MemoryJournal* j = Journal(file);
  if (j->spilled) return j->spilled->pMethods->xSync(j->spilled, flags);
  return SQLITE_OK;
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  MemoryJournal* j = Journal(file);
  if (j->spilled) return j->spilled->pMethods->xFileSize(j->spilled, size);
  *size = static_cast<sqlite3_int64>(j->bytes.size);
  return SQLITE_OK;
}

int Lock(sqlite3_file*, int) { return SQLITE_OK; }
int Unlock(sqlite3_file*, int) { return SQLITE_OK; }
int CheckReservedLock(sqlite3_file*, int* out) {
  *out = 0;
  return SQLITE_OK;
}
int FileControl(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
int SectorSize(sqlite3_file*) { return 4096; }
int DeviceCharacteristics(sqlite3_file*) { return 0; }

const sqlite3_io_methods kJournalMethods = {
    1,  // iVersion: no shared memory or memory mapping
    Close,       Read,       Write,
    Truncate,    Sync,       FileSize,
    Lock,        Unlock,     CheckReservedLock,
    FileControl, SectorSize, DeviceCharacteristics,
    nullptr,     nullptr,    nullptr,
    nullptr,     nullptr,    nullptr,
};

int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  if ((flags & SQLITE_OPEN_SUBJOURNAL) == 0)
    return Base(vfs)->xOpen(Base(vfs), name, file, flags, out_flags);
  MemoryJournal* j = Journal(file);
  j->base.pMethods = nullptr;
  j->vfs = Base(vfs);
  j->flags = flags;
  j->spilled = nullptr;
  j->bytes = TakeBuffer();
  j->base.pMethods = &kJournalMethods;
  if (out_flags) *out_flags = flags;
  opened_count.fetch_add(1, std::memory_order_relaxed);
  return SQLITE_OK;
}

// The rest goes to the base VFS, which sees itself (not this VFS) as its argument.
int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return Base(vfs)->xDelete(Base(vfs), name, sync_dir);
}
int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return Base(vfs)->xAccess(Base(vfs), name, flags, out);
}
int FullPathname(sqlite3_vfs* vfs, const char* name, int size, char* out) {
  return Base(vfs)->xFullPathname(Base(vfs), name, size, out);
}
void* DlOpen(sqlite3_vfs* vfs, const char* name) { return Base(vfs)->xDlOpen(Base(vfs), name); }
void DlError(sqlite3_vfs* vfs, int size, char* out) { Base(vfs)->xDlError(Base(vfs), size, out); }
void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return Base(vfs)->xDlSym(Base(vfs), handle, symbol);
}
void DlClose(sqlite3_vfs* vfs, void* handle) { Base(vfs)->xDlClose(Base(vfs), handle); }
int Randomness(sqlite3_vfs* vfs, int size, char* out) {
  return Base(vfs)->xRandomness(Base(vfs), size, out);
}
int Sleep(sqlite3_vfs* vfs, int micros) { return Base(vfs)->xSleep(Base(vfs), micros); }
int CurrentTime(sqlite3_vfs* vfs, double* out) { return Base(vfs)->xCurrentTime(Base(vfs), out); }
int GetLastError(sqlite3_vfs* vfs, int size, char* out) {
  return Base(vfs)->xGetLastError(Base(vfs), size, out);
}
int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return Base(vfs)->xCurrentTimeInt64(Base(vfs), out);
}

sqlite3_vfs* Register() {
  sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
  if (!base) return nullptr;
  static sqlite3_vfs vfs{};
  vfs.iVersion = 2;
  vfs.szOsFile = std::max<int>(base->szOsFile, static_cast<int>(sizeof(MemoryJournal)));
  vfs.mxPathname = base->mxPathname;
  vfs.zName = kVfsName;
  vfs.pAppData = base;
  vfs.xOpen = Open;
  vfs.xDelete = Delete;
  vfs.xAccess = Access;
  vfs.xFullPathname = FullPathname;
  vfs.xDlOpen = DlOpen;
  vfs.xDlError = DlError;
  vfs.xDlSym = DlSym;
  vfs.xDlClose = DlClose;
  vfs.xRandomness = Randomness;
  vfs.xSleep = Sleep;
  vfs.xCurrentTime = CurrentTime;
  vfs.xGetLastError = GetLastError;
  if (base->iVersion >= 2 && base->xCurrentTimeInt64) {
    vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  } else {
    vfs.iVersion = 1;
  }
  if (sqlite3_vfs_register(&vfs, /*makeDflt=*/0) != SQLITE_OK) return nullptr;
  return &vfs;
}

}  // namespace

const char* JournalVfsName() {
  static sqlite3_vfs* vfs = Register();
  return vfs ? kVfsName : nullptr;  // nullptr: SQLite's default VFS
}

void SetMemoryJournalLimit(size_t bytes) { memory_limit.store(bytes); }

JournalVfsStats JournalVfsCounts() {
  return {opened_count.load(std::memory_order_relaxed),
          spilled_count.load(std::memory_order_relaxed)};
}

}  // namespace fhirstone::db::sqlite
