#include "db/sqlite/journal_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <utility>
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
// Never destroyed: a connection may close during static destruction.
std::mutex& pool_mu = *new std::mutex;
std::vector<Buffer>& pool = *new std::vector<Buffer>;

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

// Makes room for `end` bytes (the bytes past the size are left unset).
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
  if (rc == SQLITE_OK && j->bytes.size > 0)
    rc = WriteInPieces(file, j->bytes.data, static_cast<int>(j->bytes.size), 0);
  if (rc != SQLITE_OK) {  // the journal stays in memory
    if (file->pMethods) file->pMethods->xClose(file);
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
// file are wrapped: writes that extend the WAL one after the other are gathered in a buffer and
// written at once as soon as the commit frame (a frame header whose "database size after commit"
// field is not zero) and its page are in, and before anything else touches the file (a read, a
// write elsewhere, a sync, a truncation, a size query, a file control, a close). Every WAL is
// linked to its database file (sqlite3_database_file_object): a commit becomes visible to other
// connections when SQLite updates the WAL index after a memory barrier on the database file
// (walIndexWriteHdr), and that barrier, like the release of any WAL lock, writes what the WAL
// still holds. Only with synchronous=NORMAL or OFF (what this server uses) and SQLite's default
// locking mode: synchronous=FULL may write padding after its sync, which the barrier then
// writes without a way to report a failure; exclusive locking mode takes no WAL locks.

constexpr size_t kWalBufferLimit = size_t{4} << 20;
constexpr int kWalFrameHeader = 24;

std::atomic<long> wal_writes{0};
std::atomic<long> wal_flushes{0};

// One read-only mapping of a database file for the whole process, shared by all its
// connections (SQLite's own maps the file once per connection and unmaps it whenever another
// connection has written: under steady writes each read transaction mapped the file again and
// faulted its pages in again). The mapping reserves kMapLength bytes of address space, past the
// end of the file, so that it stays valid while the file grows; a page is handed out only once it
// is known to lie inside the file (`size`), and pages beyond kMapLength are read as before.
constexpr sqlite3_int64 kMapLength = sqlite3_int64{256} << 30;
// SQLite may read a few bytes past a page of a corrupt database: the page handed out has this
// much of the file after it.
constexpr sqlite3_int64 kEofMargin = 256;

struct SharedMap {
  std::pair<dev_t, ino_t> key;
  char* base = nullptr;
  int fd = -1;                         // kept open while mapped (see AcquireMap)
  std::atomic<sqlite3_int64> size{0};  // bytes of the file known to exist
  std::mutex size_mu;                  // orders updates of `size` (a read of it needs none)
  int users = 0;                       // open database files of this inode (under maps_mu)
};

std::atomic<long> maps_created{0};
std::atomic<long> mapped_fetches{0};
std::atomic<long> wal_mapped_reads{0};
std::atomic<long> db_mapped_reads{0};
// Counting every page read would make the threads' cores fight over one cache line: tests ask.
std::atomic<bool> count_fetches{false};
// Never destroyed: a connection may close during static destruction.
std::mutex& maps_mu = *new std::mutex;
std::map<std::pair<dev_t, ino_t>, SharedMap*>& maps =
    *new std::map<std::pair<dev_t, ino_t>, SharedMap*>;

// The mapping of the file at `path` (its `base` null when it cannot be mapped: reads then use
// the file; nullptr when the file cannot be found), found by the file's device and inode (a file
// renamed over that path since SQLite opened it would be mapped instead: as with SQLite, a database
// file must not be replaced while open). The file is opened once more only to map it, and that
// descriptor stays open until the last user releases the mapping: closing any descriptor of a file
// drops every POSIX lock the process holds on it, SQLite's included. A database whose locks were
// dropped that way looked unused to another process, whose last connection then checkpointed and
// deleted the WAL that this one was still writing: the database was corrupted.
SharedMap* AcquireMap(const char* path) {
  struct stat st {};
  if (::stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  std::lock_guard lock(maps_mu);
  auto key = std::make_pair(st.st_dev, st.st_ino);
  if (auto it = maps.find(key); it != maps.end()) {
    ++it->second->users;
    return it->second;
  }
  auto* m = new (std::nothrow) SharedMap();
  if (!m) return nullptr;
  // Kept even when it cannot be mapped (an address space without 256 GiB free, a file replaced
  // in between): its descriptor may not be closed before the file's last user is gone.
  m->fd = ::open(path, O_RDONLY | O_CLOEXEC);
  struct stat opened {};
  if (m->fd >= 0 && ::fstat(m->fd, &opened) == 0 && opened.st_dev == st.st_dev &&
      opened.st_ino == st.st_ino) {
    void* base = ::mmap(nullptr, static_cast<size_t>(kMapLength), PROT_READ,
                        MAP_SHARED | MAP_NORESERVE, m->fd, 0);
    if (base != MAP_FAILED) {
      m->base = static_cast<char*>(base);
      maps_created.fetch_add(1, std::memory_order_relaxed);
    }
    m->size.store(opened.st_size);
  }
  m->key = key;
  m->users = 1;
  maps.emplace(key, m);
  return m;
}

// REQUIRES: the caller's file of this inode is closed (the last user's release closes the
// mapping's descriptor, which drops the process's locks on the file).
void ReleaseMap(SharedMap* m) {
  std::lock_guard lock(maps_mu);
  if (--m->users > 0) return;
  maps.erase(m->key);
  if (m->base) ::munmap(m->base, static_cast<size_t>(kMapLength));
  if (m->fd >= 0) ::close(m->fd);
  delete m;
}

// `end` bytes of the file exist now (written by this process).
void Grown(SharedMap* m, sqlite3_int64 end) {
  if (!m) return;
  std::lock_guard lock(m->size_mu);
  if (end > m->size.load(std::memory_order_relaxed)) m->size.store(end, std::memory_order_release);
}

struct WalBuffer {
  Buffer bytes;             // from the pool while it holds bytes (one writer at a time needs one)
  sqlite3_int64 start = 0;  // file offset of bytes[0]
  bool commit_pending = false;       // the commit frame's header is buffered; its page follows
  sqlite3_int64 last_read = -1;      // offset of the last read (a frame SQLite may rewrite)
  int failed = SQLITE_OK;            // the last flush's error, until one succeeds
  sqlite3_file* database = nullptr;  // the database file this WAL belongs to (Wrapped)
};

// A file of the base VFS held inside ours: `real` follows the wrapper in the same allocation.
struct Wrapped {
  sqlite3_file base;
  WalBuffer* wal;           // WAL files: their buffer
  sqlite3_file* open_wal;   // database files: their WAL, while open (Wrapped)
  SharedMap* map;           // the process's mapping of the file (database and WAL), if any
  sqlite3_int64 map_limit;  // database files: the bytes SQLite lets be read mapped (mmap_size)
};
constexpr size_t kRealOffset = (sizeof(Wrapped) + 15) / 16 * 16;

Wrapped* AsWrapped(sqlite3_file* file) { return reinterpret_cast<Wrapped*>(file); }
sqlite3_file* Real(sqlite3_file* file) {
  return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
}

// Writes the buffer. On failure the bytes stay (writing them again at the same offsets is
// harmless) and every later use of the file fails until a flush succeeds: SQLite may treat the
// failure of a read as a statement's, go on, and commit frames that were never written.
int FlushWal(sqlite3_file* file) {
  WalBuffer* w = AsWrapped(file)->wal;
  w->commit_pending = false;
  if (w->bytes.size == 0) return w->failed = SQLITE_OK;
  wal_flushes.fetch_add(1, std::memory_order_relaxed);
  int rc = WriteInPieces(Real(file), w->bytes.data, static_cast<int>(w->bytes.size), w->start);
  if (rc != SQLITE_OK) return w->failed = rc;
  Grown(AsWrapped(file)->map, w->start + static_cast<sqlite3_int64>(w->bytes.size));
  w->failed = SQLITE_OK;
  GiveBack(w->bytes);
  w->bytes = {};
  return SQLITE_OK;
}

int WalClose(sqlite3_file* file) {
  Wrapped* wal = AsWrapped(file);
  int flushed = FlushWal(file);
  if (wal->wal->database) AsWrapped(wal->wal->database)->open_wal = nullptr;
  int rc = Real(file)->pMethods->xClose(Real(file));
  if (wal->map) ReleaseMap(wal->map);
  wal->map = nullptr;
  GiveBack(wal->wal->bytes);
  delete wal->wal;
  wal->wal = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

// Pages of frames are copied from the process's mapping of the WAL when they lie within the
// bytes known to exist (a checkpoint reads every frame it copies, one system call each
// otherwise). SQLite reads a frame's page only within a snapshot, whose frames are in the file
// whichever process wrote them; headers and anything else are read from the file.
int WalRead(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  Wrapped* w = AsWrapped(file);
  w->wal->last_read = offset;
  if (SharedMap* m = w->map; m && m->base && amount >= 512 && offset >= 32 + kWalFrameHeader) {
    sqlite3_int64 end = offset + amount;
    if (end <= kMapLength && end <= m->size.load(std::memory_order_acquire)) {
      std::memcpy(out, m->base + offset, static_cast<size_t>(amount));
      wal_mapped_reads.fetch_add(1, std::memory_order_relaxed);
      return SQLITE_OK;
    }
  }
  return Real(file)->pMethods->xRead(Real(file), out, amount, offset);
}

int WalWrite(sqlite3_file* file, const void* in, int amount, sqlite3_int64 offset) {
  wal_writes.fetch_add(1, std::memory_order_relaxed);
  WalBuffer* w = AsWrapped(file)->wal;
  const bool commit_page = w->commit_pending;  // this write is the commit frame's page
  const auto end = w->start + static_cast<sqlite3_int64>(w->bytes.size);
  if (w->failed != SQLITE_OK ||
      (w->bytes.size > 0 &&
       (offset != end || w->bytes.size + static_cast<size_t>(amount) > kWalBufferLimit))) {
    if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  }
  // A frame read back and rewritten in place (walRewriteChecksums writes the headers of frames
  // it read): written through, as is anything that cannot be buffered.
  bool through = offset == w->last_read;
  w->last_read = -1;
  const char* bytes = static_cast<const char*>(in);
  if (!through) {
    Buffer& b = w->bytes;
    if (b.size == 0) {
      if (!b.data) b = TakeBuffer();
      w->start = offset;
    }
    if (Grow(b, b.size + static_cast<size_t>(amount))) {
      std::memcpy(b.data + b.size, bytes, static_cast<size_t>(amount));
      b.size += static_cast<size_t>(amount);
    } else {
      if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
      through = true;
    }
  }
  if (through) {
    int rc = Real(file)->pMethods->xWrite(Real(file), in, amount, offset);
    if (rc == SQLITE_OK) Grown(AsWrapped(file)->map, offset + amount);
    return rc;
  }
  if (commit_page) return FlushWal(file);  // the commit is whole
  // A frame header whose commit field (bytes 4-7, the database size after the commit) is set.
  if (amount == kWalFrameHeader && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0)
    w->commit_pending = true;
  return SQLITE_OK;
}

int WalTruncate(sqlite3_file* file, sqlite3_int64 size) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  SharedMap* m = AsWrapped(file)->map;
  if (!m) return Real(file)->pMethods->xTruncate(Real(file), size);
  std::lock_guard lock(m->size_mu);
  m->size.store(std::min(m->size.load(), size), std::memory_order_release);
  int rc = Real(file)->pMethods->xTruncate(Real(file), size);
  sqlite3_int64 now = 0;
  if (Real(file)->pMethods->xFileSize(Real(file), &now) == SQLITE_OK)
    m->size.store(now, std::memory_order_release);
  return rc;
}
int WalSync(sqlite3_file* file, int flags) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xSync(Real(file), flags);
}
int WalFileSize(sqlite3_file* file, sqlite3_int64* size) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  SharedMap* m = AsWrapped(file)->map;
  if (!m) return Real(file)->pMethods->xFileSize(Real(file), size);
  // The size as it is now (another process may have truncated the file).
  std::lock_guard lock(m->size_mu);
  int rc = Real(file)->pMethods->xFileSize(Real(file), size);
  if (rc == SQLITE_OK) m->size.store(*size, std::memory_order_release);
  return rc;
}
int WalFileControl(sqlite3_file* file, int op, void* arg) {
  if (int rc = FlushWal(file); rc != SQLITE_OK) return rc;
  return Real(file)->pMethods->xFileControl(Real(file), op, arg);
}

// Forwarded as they are (WAL and database files).
int DbClose(sqlite3_file* file) {
  Wrapped* w = AsWrapped(file);
  if (sqlite3_file* wal = w->open_wal) AsWrapped(wal)->wal->database = nullptr;
  int rc = Real(file)->pMethods->xClose(Real(file));
  if (w->map) ReleaseMap(w->map);
  w->map = nullptr;
  return rc;
}
int FwdRead(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  return Real(file)->pMethods->xRead(Real(file), out, amount, offset);
}
int FwdWrite(sqlite3_file* file, const void* in, int amount, sqlite3_int64 offset) {
  return Real(file)->pMethods->xWrite(Real(file), in, amount, offset);
}
int FwdTruncate(sqlite3_file* file, sqlite3_int64 size) {
  return Real(file)->pMethods->xTruncate(Real(file), size);
}
// A page SQLite reads with a system call (in a write transaction: it fetches mapped pages for
// reading only) is copied from the mapping when it lies inside the file. A write transaction on a
// database larger than the page cache read its pages back with `pread`: 12% of the writer's time
// in an import. As with DbFetch, an I/O error of the file (or its truncation by a process that
// ignores SQLite's locks) then stops the process with SIGBUS where `pread` would have returned
// an error; within SQLite's locking no page past the end of the file is read.
int DbRead(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  Wrapped* w = AsWrapped(file);
  SharedMap* m = w->map;
  sqlite3_int64 end = offset + amount;
  if (m && m->base && amount >= 512 && offset > 0 && end <= w->map_limit && end <= kMapLength) {
    sqlite3_int64 size = m->size.load(std::memory_order_acquire);
    if (end > size) {  // the file may have grown since (a checkpoint, or another process)
      std::lock_guard lock(m->size_mu);
      sqlite3_int64 now = 0;
      if (Real(file)->pMethods->xFileSize(Real(file), &now) == SQLITE_OK) {
        m->size.store(now, std::memory_order_release);
        size = now;
      }
    }
    if (end <= size) {
      std::memcpy(out, m->base + offset, static_cast<size_t>(amount));
      if (count_fetches.load(std::memory_order_relaxed))
        db_mapped_reads.fetch_add(1, std::memory_order_relaxed);
      return SQLITE_OK;
    }
  }
  return FwdRead(file, out, amount, offset);
}
int DbTruncate(sqlite3_file* file, sqlite3_int64 size) {
  SharedMap* m = AsWrapped(file)->map;
  if (!m) return FwdTruncate(file, size);
  // No page past the new end is handed out from here on. (SQLite reads none of them: a
  // checkpoint truncates the file only once no reader's snapshot holds more pages. That is also
  // what keeps readers safe when another process truncates it: `size` is then too large until
  // the next fetch past it.)
  std::lock_guard lock(m->size_mu);
  m->size.store(std::min(m->size.load(), size));
  int rc = FwdTruncate(file, size);
  sqlite3_int64 now = 0;
  if (Real(file)->pMethods->xFileSize(Real(file), &now) == SQLITE_OK) m->size.store(now);
  return rc;
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
int DbFileControl(sqlite3_file* file, int op, void* arg) {
  // mmap_size: how much of the file SQLite may read through the mapping (0: none). The base VFS
  // is told 0: given a limit, it would map the file itself (per connection) when a checkpoint
  // grows it (SQLITE_FCNTL_SIZE_HINT), and read through that mapping.
  if (op == SQLITE_FCNTL_MMAP_SIZE && arg) {
    sqlite3_int64 limit = *static_cast<sqlite3_int64*>(arg);
    sqlite3_int64 previous = AsWrapped(file)->map_limit;
    if (limit >= 0) AsWrapped(file)->map_limit = limit;
    sqlite3_int64 none = 0;
    int rc = FwdFileControl(file, op, &none);
    *static_cast<sqlite3_int64*>(arg) = previous;
    return rc;
  }
  return FwdFileControl(file, op, arg);
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
  // A WAL lock released: what the WAL holds goes to the file first (frames of a transaction
  // rolled back after spilling pages; a commit's are written already). The lock is released
  // whatever happens: SQLite does not look at the result of an unlock.
  int flushed = SQLITE_OK;
  if ((flags & SQLITE_SHM_UNLOCK) && AsWrapped(file)->open_wal) {
    sqlite3_file* wal = AsWrapped(file)->open_wal;
    flushed = FlushWal(wal);
    if (flushed != SQLITE_OK) {
      // Frames of no commit (a commit's are written with its last page or it fails): once the
      // lock is gone another connection may write its own frames there, so they are dropped.
      WalBuffer* w = AsWrapped(wal)->wal;
      GiveBack(w->bytes);
      w->bytes = {};
      w->failed = SQLITE_OK;
    }
  }
  int rc = Real(file)->pMethods->xShmLock(Real(file), offset, n, flags);
  return flushed != SQLITE_OK ? flushed : rc;
}
void DbShmBarrier(sqlite3_file* file) {
  if (Real(file)->pMethods->iVersion < 2) return;
  // The WAL index may be about to show frames of this connection's WAL: they go to the file
  // first. (A commit's frames were written with its last page: this is a safety net.) A failure
  // here cannot be reported and the commit would be shown without its frames: the process stops
  // instead, before the commit is acknowledged, and the WAL's recovery at the next start leaves
  // that commit out.
  if (sqlite3_file* wal = AsWrapped(file)->open_wal) {
    if (FlushWal(wal) != SQLITE_OK) {
      std::fputs("fatal: SQLite WAL frames could not be written\n", stderr);
      std::abort();
    }
  }
  Real(file)->pMethods->xShmBarrier(Real(file));
}
int FwdShmUnmap(sqlite3_file* file, int remove) {
  if (Real(file)->pMethods->iVersion < 2) return SQLITE_OK;
  return Real(file)->pMethods->xShmUnmap(Real(file), remove);
}
// A page of the database from the shared mapping, or nullptr (SQLite then reads it).
int DbFetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  *out = nullptr;
  Wrapped* w = AsWrapped(file);
  SharedMap* m = w->map;
  sqlite3_int64 end = offset + amount;
  if (!m || !m->base || offset < 0 || end > w->map_limit || end + kEofMargin > kMapLength)
    return SQLITE_OK;
  if (sqlite3_int64 size = m->size.load(std::memory_order_acquire); end + kEofMargin > size) {
    if (end <= size) return SQLITE_OK;  // the last page: read (no margin follows it)
    // Past the size known: the file may have grown since (a checkpoint, or another process).
    std::lock_guard lock(m->size_mu);
    sqlite3_int64 now = 0;
    if (Real(file)->pMethods->xFileSize(Real(file), &now) != SQLITE_OK) return SQLITE_OK;
    m->size.store(now, std::memory_order_release);
    if (end + kEofMargin > now) return SQLITE_OK;
  }
  if (count_fetches.load(std::memory_order_relaxed))
    mapped_fetches.fetch_add(1, std::memory_order_relaxed);
  *out = m->base + offset;
  return SQLITE_OK;
}
// Nothing to release: the mapping lives while the file is open in the process. (SQLite's
// "unmap everything", a null page, follows a change by another connection: the shared mapping
// sees every change, since it maps the file itself.)
int DbUnfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

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
    DbClose,
    DbRead,
    FwdWrite,
    DbTruncate,
    FwdSync,
    FwdFileSize,
    FwdLock,
    FwdUnlock,
    FwdCheckReservedLock,
    DbFileControl,
    FwdSectorSize,
    FwdDeviceCharacteristics,
    FwdShmMap,
    DbShmLock,
    DbShmBarrier,
    FwdShmUnmap,
    DbFetch,
    DbUnfetch,
};

int OpenWrapped(sqlite3_vfs* base, const char* name, sqlite3_file* file, int flags, int* out_flags,
                bool wal) {
  Wrapped* w = AsWrapped(file);
  w->base.pMethods = nullptr;
  w->wal = nullptr;
  w->open_wal = nullptr;
  w->map = nullptr;
  w->map_limit = 0;
  sqlite3_file* real = Real(file);
  real->pMethods = nullptr;
  int rc = base->xOpen(base, name, real, flags, out_flags);
  if (!real->pMethods) return rc;  // nothing to close
  if (!wal) {
    w->base.pMethods = &kDatabaseMethods;
    if (rc == SQLITE_OK && name) w->map = AcquireMap(name);
    return rc;
  }
  // The database file this WAL belongs to, opened through this VFS: it must know its WAL.
  sqlite3_file* database = name ? sqlite3_database_file_object(name) : nullptr;
  if (!database || database->pMethods != &kDatabaseMethods) {
    real->pMethods->xClose(real);
    return SQLITE_CANTOPEN;
  }
  w->wal = new (std::nothrow) WalBuffer();
  if (!w->wal) {
    real->pMethods->xClose(real);
    return SQLITE_NOMEM;
  }
  w->wal->database = database;
  AsWrapped(database)->open_wal = file;
  w->base.pMethods = &kWalMethods;
  if (rc == SQLITE_OK && name) w->map = AcquireMap(name);
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

void SetMemoryJournalLimit(size_t bytes) { memory_limit.store(std::min(bytes, size_t{1} << 30)); }

void CountMappedFetches(bool on) { count_fetches.store(on); }

JournalVfsStats JournalVfsCounts() {
  return {opened_count.load(std::memory_order_relaxed),
          spilled_count.load(std::memory_order_relaxed),
          wal_writes.load(std::memory_order_relaxed),
          wal_flushes.load(std::memory_order_relaxed),
          maps_created.load(std::memory_order_relaxed),
          mapped_fetches.load(std::memory_order_relaxed),
          wal_mapped_reads.load(std::memory_order_relaxed),
          db_mapped_reads.load(std::memory_order_relaxed)};
}

}  // namespace fhirstone::db::sqlite
