#include "db/sqlite/journal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
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

// ---- Write-ahead log: frames written in one system call per commit ----
//
// SQLite writes each WAL frame with two writes (its 24-byte header, then the page): a group
// commit of a few hundred pages made a few hundred system calls. The WAL file and the database
// file are wrapped: writes to the WAL that follow each other are gathered in a buffer and
// written at once when the commit frame (a frame header whose "database size after commit"
// field is not zero) has been written, and before anything else touches the file (a read, a
// write elsewhere, a sync, a truncation, a size query, a file control, a close). A commit
// becomes visible to other connections when SQLite updates the WAL index, after a memory
// barrier on the database file (walIndexWriteHdr): that barrier also writes what the calling
// thread still holds, so no connection can see a frame that is not in the file.

constexpr size_t kWalBufferLimit = size_t{4} << 20;
constexpr int kWalFrameHeader = 24;

std::atomic<long> wal_writes{0};
std::atomic<long> wal_flushes{0};

struct WalBuffer {
  std::vector<char> bytes;
  sqlite3_int64 start = 0;      // file offset of bytes[0]
  bool commit_pending = false;  // the commit frame's header is buffered; its page follows
};

// A file of the base VFS held inside ours: `real` follows the wrapper in the same allocation.
struct Wrapped {
  sqlite3_file base;
  WalBuffer* wal;  // WAL files only
};
constexpr size_t kRealOffset = (sizeof(Wrapped) + 15) / 16 * 16;

Wrapped* AsWrapped(sqlite3_file* file) { return reinterpret_cast<Wrapped*>(file); }
sqlite3_file* Real(sqlite3_file* file) {
  return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
}

// The WAL whose buffer the calling thread filled and has not written yet.
thread_local sqlite3_file* pending_wal = nullptr;

int FlushWal(sqlite3_file* file) {
  WalBuffer* w = AsWrapped(file)->wal;
  if (pending_wal == file) pending_wal = nullptr;
  w->commit_pending = false;
  if (w->bytes.empty()) return SQLITE_OK;
  wal_flushes.fetch_add(1, std::memory_order_relaxed);
  int rc = WriteInPieces(Real(file), w->bytes.data(), static_cast<int>(w->bytes.size()), w->start);
  w->bytes.clear();
  if (w->bytes.capacity() > kWalBufferLimit * 2) std::vector<char>().swap(w->bytes);
  return rc;
}

int WalClose(sqlite3_file* file) {
  int flushed = FlushWal(file);
  int rc = Real(file)->pMethods->xClose(Real(file));
  delete AsWrapped(file)->wal;
  AsWrapped(file)->wal = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int WalRead(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xRead(Real(file), out, amount, offset);
}

int WalWrite(sqlite3_file* file, const void* in, int amount, sqlite3_int64 offset) {
  wal_writes.fetch_add(1, std::memory_order_relaxed);
  WalBuffer* w = AsWrapped(file)->wal;
  const auto end = w->start + static_cast<sqlite3_int64>(w->bytes.size());
  if (!w->bytes.empty() &&
      (offset != end || w->bytes.size() + static_cast<size_t>(amount) > kWalBufferLimit)) {
    if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  }
  if (w->bytes.empty()) w->start = offset;
  const char* bytes = static_cast<const char*>(in);
  try {
    w->bytes.insert(w->bytes.end(), bytes, bytes + amount);
  } catch (const std::bad_alloc&) {
    if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
    return Real(file)->pMethods->xWrite(Real(file), in, amount, offset);
  }
  pending_wal = file;
  if (w->commit_pending) return FlushWal(file);  // the commit frame's page: the commit is whole
  // A frame header whose commit field (bytes 4-7, the database size after the commit) is set.
  if (amount == kWalFrameHeader && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0)
    w->commit_pending = true;
  return SQLITE_OK;
}

int WalTruncate(sqlite3_file* file, sqlite3_int64 size) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xTruncate(Real(file), size);
}
int WalSync(sqlite3_file* file, int flags) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xSync(Real(file), flags);
}
int WalFileSize(sqlite3_file* file, sqlite3_int64* size) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xFileSize(Real(file), size);
}
int WalFileControl(sqlite3_file* file, int op, void* arg) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xFileControl(Real(file), op, arg);
}

// Forwarded as they are (WAL and database files).
int FwdClose(sqlite3_file* file) { return Real(file)->pMethods->xClose(Real(file)); }
int FwdRead(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  return Real(file)->pMethods->xRead(Real(file), out, amount, offset);
}
int FwdWrite(sqlite3_file* file, const void* in, int amount, sqlite3_int64 offset) {
  return Real(file)->pMethods->xWrite(Real(file), in, amount, offset);
}
int FwdTruncate(sqlite3_file* file, sqlite3_int64 size) {
  return Real(file)->pMethods->xTruncate(Real(file), size);
}
int FwdSync(sqlite3_file* file, int flags) {
  return Real(file)->pMethods->xSync(Real(file), flags);
}
int FwdFileSize(sqlite3_file* file, sqlite3_int64* size) {
  return Real(file)->pMethods->xFileSize(Real(file), size);
}
int FwdLock(sqlite3_file* file, int level) {
  return Real(file)->pMethods->xLock(Real(file), level);
}
int FwdUnlock(sqlite3_file* file, int level) {
  return Real(file)->pMethods->xUnlock(Real(file), level);
}
int FwdCheckReservedLock(sqlite3_file* file, int* out) {
  return Real(file)->pMethods->xCheckReservedLock(Real(file), out);
}
int FwdFileControl(sqlite3_file* file, int op, void* arg) {
  return Real(file)->pMethods->xFileControl(Real(file), op, arg);
}
int FwdSectorSize(sqlite3_file* file) { return Real(file)->pMethods->xSectorSize(Real(file)); }
int FwdDeviceCharacteristics(sqlite3_file* file) {
  return Real(file)->pMethods->xDeviceCharacteristics(Real(file));
}
int FwdShmMap(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
  if (Real(file)->pMethods->iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return Real(file)->pMethods->xShmMap(Real(file), region, size, extend, out);
}
int DbShmLock(sqlite3_file* file, int offset, int n, int flags) {
  if (Real(file)->pMethods->iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  // A write transaction ends (its WAL write lock is released) on the thread that wrote: what it
  // left in a buffer (frames of a rolled-back transaction) goes to the file now, so that the
  // thread's pointer never outlives the transaction.
  if ((flags & SQLITE_SHM_UNLOCK) && pending_wal) {
    if (int rc = FlushWal(pending_wal); rc != SQLITE_OK) return rc;
  }
  return Real(file)->pMethods->xShmLock(Real(file), offset, n, flags);
}
void DbShmBarrier(sqlite3_file* file) {
  if (Real(file)->pMethods->iVersion < 2) return;
  // The WAL index is about to show what the calling thread wrote: the frames go to the file
  // first. (Written already with the commit frame: this is the safety net.)
  if (pending_wal) (void)FlushWal(pending_wal);
  Real(file)->pMethods->xShmBarrier(Real(file));
}
int FwdShmUnmap(sqlite3_file* file, int remove) {
  if (Real(file)->pMethods->iVersion < 2) return SQLITE_OK;
  return Real(file)->pMethods->xShmUnmap(Real(file), remove);
}
int FwdFetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  if (Real(file)->pMethods->iVersion < 3) {
    *out = nullptr;
    return SQLITE_OK;
  }
  return Real(file)->pMethods->xFetch(Real(file), offset, amount, out);
}
int FwdUnfetch(sqlite3_file* file, sqlite3_int64 offset, void* page) {
  if (Real(file)->pMethods->iVersion < 3) return SQLITE_OK;
  return Real(file)->pMethods->xUnfetch(Real(file), offset, page);
}

const sqlite3_io_methods kWalMethods = {
    1,
    WalClose,
    WalRead,
    WalWrite,
    WalTruncate,
    WalSync,
    WalFileSize,
    FwdLock,
    FwdUnlock,
    FwdCheckReservedLock,
    WalFileControl,
    FwdSectorSize,
    FwdDeviceCharacteristics,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

const sqlite3_io_methods kDatabaseMethods = {
    3,
    FwdClose,
    FwdRead,
    FwdWrite,
    FwdTruncate,
    FwdSync,
    FwdFileSize,
    FwdLock,
    FwdUnlock,
    FwdCheckReservedLock,
    FwdFileControl,
    FwdSectorSize,
    FwdDeviceCharacteristics,
    FwdShmMap,
    DbShmLock,
    DbShmBarrier,
    FwdShmUnmap,
    FwdFetch,
    FwdUnfetch,
};

int OpenWrapped(sqlite3_vfs* base, const char* name, sqlite3_file* file, int flags, int* out_flags,
                bool wal) {
  Wrapped* w = AsWrapped(file);
  w->base.pMethods = nullptr;
  w->wal = nullptr;
  sqlite3_file* real = Real(file);
  real->pMethods = nullptr;
  int rc = base->xOpen(base, name, real, flags, out_flags);
  if (!real->pMethods) return rc;  // nothing to close
  if (wal) {
    w->wal = new (std::nothrow) WalBuffer();
    if (!w->wal) {
      real->pMethods->xClose(real);
      return SQLITE_NOMEM;
    }
    w->base.pMethods = &kWalMethods;
  } else {
    w->base.pMethods = &kDatabaseMethods;
  }
  return rc;
}

int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  if (flags & SQLITE_OPEN_WAL) return OpenWrapped(Base(vfs), name, file, flags, out_flags, true);
  if (flags & SQLITE_OPEN_MAIN_DB)
    return OpenWrapped(Base(vfs), name, file, flags, out_flags, false);
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
  vfs.szOsFile = std::max<int>(static_cast<int>(kRealOffset) + base->szOsFile,
                               static_cast<int>(sizeof(MemoryJournal)));
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
          spilled_count.load(std::memory_order_relaxed), wal_writes.load(std::memory_order_relaxed),
          wal_flushes.load(std::memory_order_relaxed)};
}

}  // namespace fhirstone::db::sqlite
