// The folder of a `cvnode fit` run (latest.h5, best.h5, metrics.csv, config.toml, figures) and
// its ownership: one fit at a time holds an exclusive lock on it for its whole life, and a fresh
// fit never mixes its files with those of an earlier run.
#pragma once

#include <string>
#include <vector>

namespace cvnode::io {

class RunFolder {
 public:
  explicit RunFolder(std::string dir);
  ~RunFolder();
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;

  const std::string& dir() const { return dir_; }
  std::string file(const std::string& name) const;  // dir/name

  // The files of an earlier run in the folder (names), empty when it holds none: a run is there
  // once it has a checkpoint or metrics (a fit killed before its first epoch ended is not).
  std::vector<std::string> run_files() const;
  // Creates the folder if needed and takes its exclusive lock (released by the destructor or at
  // exit, also after a kill), then removes the temporary files that killed writers left there.
  // Throws OptionsError naming the folder and the process holding it.
  void lock();
  // Removes the files of an earlier run: checkpoints, metrics, configuration, figures and their
  // plot data; anything else in the folder is left alone.
  void clear_run() const;

  // Names of what a run writes (for the input-is-not-an-output checks).
  static const std::vector<std::string>& outputs();

 private:
  std::string dir_;
  int lock_fd_ = -1;
};

}  // namespace cvnode::io
