/* A full disk on demand, for the fault-injection tests (LD_PRELOAD=libcvnode_write_budget.so):
 * regular files may receive CVNODE_FAULT_WRITE_BUDGET bytes in all, across every write call of
 * the process; the write that crosses the budget is cut short and every later one fails with
 * ENOSPC, as on a full file system. CVNODE_FAULT_FSYNC=1 makes fsync fail with EIO instead (a
 * device error surfacing late). Pipes, terminals and /dev/null are not counted. Used where a
 * small tmpfs cannot be mounted (no root, a container); the tmpfs runs need no shim. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_llong remaining = -2; /* -2: not read yet, -1: no budget */
static atomic_llong used = 0;       /* bytes let through to regular files */

static long long budget(void) {
  long long r = atomic_load(&remaining);
  if (r == -2) {
    const char* v = getenv("CVNODE_FAULT_WRITE_BUDGET");
    long long b = v && *v ? atoll(v) : -1;
    long long expected = -2;
    atomic_compare_exchange_strong(&remaining, &expected, b < 0 ? -1 : b);
    r = atomic_load(&remaining);
  }
  return r;
}

static int counted(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* How many of `want` bytes may be written now; 0 with errno = ENOSPC when none. */
static size_t allow(int fd, size_t want) {
  if (want == 0 || !counted(fd)) return want;
  if (budget() < 0) {
    atomic_fetch_add(&used, (long long)want);
    return want;
  }
  for (;;) {
    long long r = atomic_load(&remaining);
    if (r <= 0) {
      errno = ENOSPC;
      return 0;
    }
    long long take = (long long)want < r ? (long long)want : r;
    if (atomic_compare_exchange_weak(&remaining, &r, r - take)) {
      atomic_fetch_add(&used, take);
      return (size_t)take;
    }
  }
}

typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec*, int);
typedef int (*fsync_fn)(int);

static write_fn real_write(void) {
  static write_fn f;
  if (!f) f = (write_fn)dlsym(RTLD_NEXT, "write");
  return f;
}

ssize_t write(int fd, const void* buf, size_t n) {
  size_t k = allow(fd, n);
  if (n > 0 && k == 0) return -1;
  return real_write()(fd, buf, k);
}

static ssize_t budgeted_pwrite(const char* name, int fd, const void* buf, size_t n, off_t off) {
  pwrite_fn real = (pwrite_fn)dlsym(RTLD_NEXT, name);
  size_t k = allow(fd, n);
  if (n > 0 && k == 0) return -1;
  return real(fd, buf, k, off);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) { return budgeted_pwrite("pwrite", fd, buf, n, off); }
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return budgeted_pwrite("pwrite64", fd, buf, n, off); }

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  static writev_fn real;
  if (!real) real = (writev_fn)dlsym(RTLD_NEXT, "writev");
  size_t total = 0;
  for (int i = 0; i < cnt; ++i) total += iov[i].iov_len;
  size_t k = allow(fd, total);
  if (total > 0 && k == 0) return -1;
  if (k == total) return real(fd, iov, cnt);
  /* Cut short: the allowed prefix only. */
  ssize_t done = 0;
  for (int i = 0; i < cnt && k > 0; ++i) {
    size_t part = iov[i].iov_len < k ? iov[i].iov_len : k;
    ssize_t w = real_write()(fd, iov[i].iov_base, part);
    if (w < 0) return done > 0 ? done : -1;
    done += w;
    k -= (size_t)w;
    if ((size_t)w < part) break;
  }
  return done;
}

int fsync(int fd) {
  static fsync_fn real;
  if (!real) real = (fsync_fn)dlsym(RTLD_NEXT, "fsync");
  const char* v = getenv("CVNODE_FAULT_FSYNC");
  if (v && *v == '1' && counted(fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}

/* CVNODE_FAULT_REPORT=FILE: at exit, append "PID BYTES" (bytes written to regular files) to
 * FILE, so that a test can place its budgets within what a command writes. */
__attribute__((destructor)) static void report(void) {
  const char* path = getenv("CVNODE_FAULT_REPORT");
  if (!path || !*path) return;
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return;
  char line[64];
  int n = snprintf(line, sizeof line, "%ld %lld\n", (long)getpid(), (long long)atomic_load(&used));
  if (n > 0) (void)!real_write()(fd, line, (size_t)n);
  close(fd);
}
