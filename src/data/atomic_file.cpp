#include "data/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <streambuf>
#include <vector>

#include "cvnode/errors.h"

namespace cvnode::io {

namespace {

constexpr char kMagic[16] = {'C', 'V', 'N', 'O', 'D', 'E', '-', 'S', 'E', 'A', 'L', '-', 'V', '1', '\n', '\0'};

std::string sys_error(int err = errno) {
  std::string s = std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) s += " (disk full?)";
  return s;
}

// A file descriptor closed on scope exit (read paths, where a close error cannot lose data).
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

// Checksum of the bytes [from, size) of an open file.
bool checksum_file(int fd, std::uint64_t from, std::uint64_t size, std::uint64_t* out) {
  Checksum c;
  std::vector<unsigned char> buf(1 << 20);
  std::uint64_t pos = from;
  while (pos < size) {
    const size_t want = static_cast<size_t>(std::min<std::uint64_t>(buf.size(), size - pos));
    const ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(pos));
    if (got < 0 && errno == EINTR) continue;
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

std::string hex(std::uint64_t v) {
  std::ostringstream o;
  o << std::hex << std::setw(16) << std::setfill('0') << v;
  return o.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
AtomicWrite::AtomicWrite(std::string final_path) : final_(std::move(final_path)) {
  static std::atomic<unsigned> counter{0};
  temp_ = final_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

AtomicWrite::~AtomicWrite() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) ::unlink(temp_.c_str());
}

void AtomicWrite::fail(const std::string& what) { throw DataError(final_ + ": cannot write: " + what); }

void AtomicWrite::open_temp() {
  if (done_) fail("already committed");
  // O_EXCL: a temporary name is never shared, not even with a stale file of a reused PID.
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    std::error_code ec;
    if (std::filesystem::is_directory(final_, ec)) fail("it is a directory");
    fail("cannot create the temporary file " + temp_ + ": " + sys_error(err));
  }
}

void AtomicWrite::write(const void* data, std::size_t n) {
  if (fd_ < 0) open_temp();
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail(sys_error());
    if (w == 0) fail("the write made no progress (disk full?)");
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void AtomicWrite::commit() {
  if (fd_ < 0) open_temp();  // an empty file
  if (::fsync(fd_) != 0) fail("fsync of " + temp_ + " failed: " + sys_error());
  // close() can report a deferred write error (NFS, quotas): it is checked like a write.
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("closing " + temp_ + " failed: " + sys_error());
  if (::rename(temp_.c_str(), final_.c_str()) != 0) fail("rename of " + temp_ + " failed: " + sys_error());
  done_ = true;
  // Make the rename itself durable.
  Fd dir(::open(folder_of(final_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd >= 0) ::fsync(dir.fd);
  remove_stale_temporaries(final_);
}

void write_sealed(const std::string& final_path, const std::vector<unsigned char>& image) {
  std::vector<unsigned char> block(kSealBytes, 0);
  Checksum c;
  c.update(block.data() + kHeaderBytes, kSealBytes - kHeaderBytes);
  c.update(image.data(), image.size());
  std::memcpy(block.data(), kMagic, 16);
  put_u64(block.data() + 16, kSealBytes + image.size());
  put_u64(block.data() + 24, c.finish());
  AtomicWrite w(final_path);
  w.write(block.data(), block.size());
  w.write(image.data(), image.size());
  w.commit();
}

void publish(const std::string& temp_path, const std::string& final_path) {
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::unlink(temp_path.c_str());
    throw DataError(final_path + ": cannot write: " + what + ": " + sys_error(err));
  };
  const int fd = ::open(temp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open " + temp_path);
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync of " + temp_path + " failed");
  }
  if (::close(fd) != 0) fail("closing " + temp_path + " failed");
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0) fail("rename of " + temp_path + " failed");
  Fd dir(::open(folder_of(final_path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd >= 0) ::fsync(dir.fd);
}

void write_text(const std::string& final_path, const std::string& text) {
  AtomicWrite w(final_path);
  w.write(text.data(), text.size());
  w.commit();
}

// ---------------------------------------------------------------------------------------------
// A stream buffer over an AtomicWrite: the first failure is kept (the stream only sees a failed
// write) and reported by commit() with its reason.
class AtomicOutput::Buffer : public std::streambuf {
 public:
  explicit Buffer(const std::string& final_path) : w_(final_path), buf_(1 << 16) {
    setp(buf_.data(), buf_.data() + buf_.size());
  }
  AtomicWrite& writer() { return w_; }
  void commit() {
    drain();
    if (!error_.empty()) throw DataError(error_);
    w_.commit();
  }

 protected:
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    const std::size_t n = static_cast<std::size_t>(pptr() - pbase());
    setp(buf_.data(), buf_.data() + buf_.size());
    if (!error_.empty()) return false;
    try {
      w_.write(buf_.data(), n);
    } catch (const DataError& e) {
      error_ = e.what();
      return false;
    }
    return true;
  }
  AtomicWrite w_;
  std::vector<char> buf_;
  std::string error_;
};

AtomicOutput::AtomicOutput(const std::string& final_path, bool keep_existing)
    : buf_(std::make_unique<Buffer>(final_path)), os_(std::make_unique<std::ostream>(buf_.get())) {
  if (keep_existing) {
    std::ifstream in(final_path, std::ios::binary);
    if (in) {
      *os_ << in.rdbuf();
      if (in.bad()) throw DataError(final_path + ": cannot read its current content to append to it");
      os_->clear();
    }
  }
}

AtomicOutput::~AtomicOutput() = default;
std::ostream& AtomicOutput::stream() { return *os_; }
const std::string& AtomicOutput::final_path() const { return buf_->writer().final_path(); }
void AtomicOutput::commit() {
  os_->flush();
  buf_->commit();
}

// ---------------------------------------------------------------------------------------------
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
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
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
  if (!checksum_file(f.fd, kHeaderBytes, size, &sum)) throw DataError(path + ": cannot be read: " + sys_error());
  if (sum != get_u64(header + 24))
    throw DataError(path + ": corrupted file: checksum mismatch (the bytes changed after cvnode wrote it)");
  return SealState::Valid;
}

std::string content_fingerprint(const std::string& path) {
  if (verify_seal(path) == SealState::Valid) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    unsigned char header[kHeaderBytes];
    if (f.fd < 0 || ::pread(f.fd, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header))
      throw DataError(path + ": cannot be read: " + sys_error());
    return "sealed:" + std::to_string(get_u64(header + 16)) + ":" + hex(get_u64(header + 24));
  }
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) throw DataError(path + ": cannot open: " + sys_error());
  const off_t end = ::lseek(f.fd, 0, SEEK_END);
  std::uint64_t sum = 0;
  if (end < 0 || !checksum_file(f.fd, 0, static_cast<std::uint64_t>(end), &sum))
    throw DataError(path + ": cannot be read: " + sys_error());
  return "whole:" + std::to_string(end) + ":" + hex(sum);
}

void check_not_input(const std::string& what, const std::string& output, const std::vector<std::string>& inputs) {
  struct stat o {};
  if (output.empty() || ::stat(output.c_str(), &o) != 0) return;  // a new file cannot be an input
  for (const auto& in : inputs) {
    struct stat i {};
    if (in.empty() || ::stat(in.c_str(), &i) != 0) continue;
    if (i.st_dev == o.st_dev && i.st_ino == o.st_ino)
      throw OptionsError(what + ": the output " + output + " is the input " + in +
                         " (it would be replaced; choose another output)");
  }
}

}  // namespace cvnode::io
