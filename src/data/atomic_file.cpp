#include "data/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "cvnode/errors.h"

namespace cvnode::io {

namespace {

constexpr char kMagic[16] = {'C', 'V', 'N', 'O', 'D', 'E', '-', 'S', 'E', 'A', 'L', '-', 'V', '1', '\n', '\0'};

std::string sys_error() { return std::strerror(errno); }

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

void put_u64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

// A 64-bit checksum over little-endian words. Each step is a bijection of the running value and
// of the word, so any change confined to one word always changes the result.
class Checksum {
 public:
  void update(const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      word_ |= static_cast<std::uint64_t>(p[i]) << (8 * fill_);
      if (++fill_ == 8) { mix(word_); word_ = 0; fill_ = 0; }
    }
  }
  std::uint64_t finish() {
    if (fill_ > 0) mix(word_ ^ (static_cast<std::uint64_t>(fill_) << 60));
    return h_;
  }

 private:
  void mix(std::uint64_t w) {
    w *= 0x9E3779B97F4A7C15ULL;
    w ^= w >> 29;
    h_ = (h_ ^ w) * 0xBF58476D1CE4E5B9ULL;
    h_ = (h_ << 23) | (h_ >> 41);
  }
  std::uint64_t h_ = 0x243F6A8885A308D3ULL, word_ = 0;
  int fill_ = 0;
};

// Bytes of the seal itself: magic, length, checksum. Everything after it is checksummed,
// including the unused rest of the user block.
constexpr std::uint64_t kHeaderBytes = 32;

// Reads [kHeaderBytes, size) and returns its checksum.
bool checksum_body(int fd, std::uint64_t size, std::uint64_t* out) {
  Checksum c;
  std::vector<unsigned char> buf(1 << 20);
  std::uint64_t pos = kHeaderBytes;
  while (pos < size) {
    const size_t want = static_cast<size_t>(std::min<std::uint64_t>(buf.size(), size - pos));
    const ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(pos));
    if (got <= 0) return false;
    c.update(buf.data(), static_cast<size_t>(got));
    pos += static_cast<std::uint64_t>(got);
  }
  *out = c.finish();
  return true;
}

std::string folder_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

}  // namespace

AtomicWrite::AtomicWrite(std::string final_path) : final_(std::move(final_path)) {
  static std::atomic<unsigned> counter{0};
  temp_ = final_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

AtomicWrite::~AtomicWrite() {
  if (!done_) ::unlink(temp_.c_str());
}

void AtomicWrite::commit() {
  auto bad = [&](const std::string& what) { return DataError(final_ + ": cannot write: " + what); };
  Fd f(::open(temp_.c_str(), O_RDWR));
  if (f.fd < 0) throw bad("temporary file " + temp_ + ": " + sys_error());
  const off_t end = ::lseek(f.fd, 0, SEEK_END);
  if (end < static_cast<off_t>(kSealBytes)) throw bad("temporary file " + temp_ + " is too short to seal");
  const auto size = static_cast<std::uint64_t>(end);
  std::uint64_t sum = 0;
  if (!checksum_body(f.fd, size, &sum)) throw bad("cannot read back " + temp_ + ": " + sys_error());
  unsigned char header[kHeaderBytes];
  std::memcpy(header, kMagic, 16);
  put_u64(header + 16, size);
  put_u64(header + 24, sum);
  if (::pwrite(f.fd, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header))
    throw bad("cannot seal " + temp_ + ": " + sys_error());
  publish(f.fd);
}

void AtomicWrite::commit_unsealed() {
  Fd f(::open(temp_.c_str(), O_RDWR));
  if (f.fd < 0) throw DataError(final_ + ": cannot write: temporary file " + temp_ + ": " + sys_error());
  publish(f.fd);
}

void AtomicWrite::publish(int fd) {
  auto bad = [&](const std::string& what) { return DataError(final_ + ": cannot write: " + what); };
  if (::fsync(fd) != 0) throw bad("fsync of " + temp_ + " failed: " + sys_error());
  if (::rename(temp_.c_str(), final_.c_str()) != 0) throw bad("rename of " + temp_ + " failed: " + sys_error());
  done_ = true;
  // Make the rename itself durable.
  Fd dir(::open(folder_of(final_).c_str(), O_RDONLY | O_DIRECTORY));
  if (dir.fd >= 0) ::fsync(dir.fd);
  remove_stale_temporaries(final_);
}

// A process killed between creating its temporary file and the rename (SIGKILL, power loss)
// leaves FINAL.tmp.PID.N behind; the next successful write of FINAL removes those whose process
// no longer exists. Best effort: a folder that cannot be listed is left as it is, and a PID that
// was reused by a live process keeps its file (the safe side).
void remove_stale_temporaries(const std::string& final_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path fin(final_path);
  const std::string prefix = fin.filename().string() + ".tmp.";
  const fs::path folder = fin.has_parent_path() ? fin.parent_path() : fs::path(".");
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());  // PID.N
    const auto dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos) continue;
    if (rest.find_first_not_of("0123456789.") != std::string::npos) continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

SealState verify_seal(const std::string& path) {
  Fd f(::open(path.c_str(), O_RDONLY));
  if (f.fd < 0) throw DataError(path + ": cannot open: " + sys_error());
  unsigned char header[kHeaderBytes];
  if (::pread(f.fd, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) ||
      std::memcmp(header, kMagic, 16) != 0)
    return SealState::Absent;
  const off_t end = ::lseek(f.fd, 0, SEEK_END);
  const std::uint64_t size = get_u64(header + 16);
  if (end < 0 || static_cast<std::uint64_t>(end) != size)
    throw DataError(path + ": truncated or corrupted file: " + std::to_string(end) + " bytes, its seal says " +
                    std::to_string(size));
  std::uint64_t sum = 0;
  if (!checksum_body(f.fd, size, &sum)) throw DataError(path + ": cannot be read: " + sys_error());
  if (sum != get_u64(header + 24))
    throw DataError(path + ": corrupted file: checksum mismatch (the bytes changed after cvnode wrote it)");
  return SealState::Valid;
}

}  // namespace cvnode::io
