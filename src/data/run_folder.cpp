#include "data/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cvnode/errors.h"
#include "data/atomic_file.h"

namespace cvnode::io {

namespace fs = std::filesystem;

namespace {
// Hidden, and left in place after the run: removing a lock file races with its next taker.
const char* const kLockName = ".cvnode.lock";
const char* const kPlotData = "plot_data";
}  // namespace

const std::vector<std::string>& RunFolder::outputs() {
  static const std::vector<std::string> names = {"latest.h5", "best.h5", "metrics.csv", "config.toml",
                                                 "trajectories.png", "loss.png", "nfe.png"};
  return names;
}

RunFolder::RunFolder(std::string dir) : dir_(std::move(dir)) {}

RunFolder::~RunFolder() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

std::string RunFolder::file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

std::vector<std::string> RunFolder::run_files() const {
  // A run is there once it has finished an epoch (a checkpoint or metrics). A fit killed before
  // that leaves only config.toml, which the next fit simply replaces.
  std::vector<std::string> found;
  std::error_code ec;
  bool progress = false;
  for (const auto& n : outputs())
    if (fs::exists(file(n), ec)) {
      found.push_back(n);
      progress = progress || n == "latest.h5" || n == "best.h5" || n == "metrics.csv";
    }
  if (fs::exists(file(kPlotData), ec)) found.push_back(kPlotData);
  if (!progress) found.clear();
  return found;
}

void RunFolder::lock() {
  if (lock_fd_ >= 0) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw DataError(dir_ + ": cannot create the output folder: " + ec.message());
  if (!fs::is_directory(dir_, ec)) throw OptionsError(dir_ + ": --out must be a folder, this is a file");
  const std::string path = file(kLockName);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw DataError(path + ": cannot create the run's lock file: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    std::ifstream in(path);
    std::getline(in, holder);
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw OptionsError(dir_ + ": another cvnode fit" + (holder.empty() ? std::string() : " (process " + holder + ")") +
                         " is writing to this folder; wait for it to finish or choose another --out");
    throw DataError(path + ": cannot lock: " + std::strerror(err));
  }
  lock_fd_ = fd;
  // Who holds it, for the message above (informational: a failure here loses nothing).
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  // Temporary files of an earlier fit killed mid-write: a file this run may never write again
  // (best.h5 without a better validation) would keep its leftover otherwise.
  for (const auto& n : outputs()) remove_stale_temporaries(file(n));
}

void RunFolder::clear_run() const {
  for (const auto& n : outputs()) {
    std::error_code ec;
    fs::remove(file(n), ec);
    if (ec) throw DataError(file(n) + ": cannot remove the earlier run's file: " + ec.message());
  }
  std::error_code ec;
  fs::remove_all(file(kPlotData), ec);
  if (ec) throw DataError(file(kPlotData) + ": cannot remove the earlier run's plot data: " + ec.message());
}

}  // namespace cvnode::io
