// Whole-file integrity for everything cvnode writes (datasets, checkpoints): files are written
// under a temporary name in the destination's folder, sealed, synced and renamed over the
// destination, so a reader or a crash at any instant sees the old file or the new one, never a
// part. The seal (length and checksum of every byte after the seal itself) lets a reader
// reject a truncated or corrupted file before HDF5 parses a single byte of it.
#pragma once

#include <cstdint>
#include <string>

namespace cvnode::io {

// Bytes reserved at the start of each sealed file (an HDF5 user block, ignored by HDF5 tools).
constexpr std::uint64_t kSealBytes = 512;

class AtomicWrite {
 public:
  explicit AtomicWrite(std::string final_path);
  // Removes the temporary file unless commit() completed.
  ~AtomicWrite();
  AtomicWrite(const AtomicWrite&) = delete;
  AtomicWrite& operator=(const AtomicWrite&) = delete;

  const std::string& temp_path() const { return temp_; }
  const std::string& final_path() const { return final_; }
  // Seals the (closed) temporary file, fsyncs it, renames it over the destination and fsyncs the
  // folder. Throws DataError naming the destination on any failure (the destination is then
  // untouched).
  void commit();
  // The same for a file that is not HDF5 (a CSV): fsync, rename, fsync the folder, no seal.
  void commit_unsealed();

 private:
  void publish(int fd);
  std::string final_, temp_;
  bool done_ = false;
};

// Removes FINAL.tmp.PID.N files of processes that no longer exist (left by a kill between a
// write and its rename); commit() calls it after every successful write of FINAL.
void remove_stale_temporaries(const std::string& final_path);

enum class SealState { Valid, Absent };

// Absent: the file has no cvnode seal (written by another tool); nothing was checked.
// Throws DataError "PATH: truncated ..." or "PATH: corrupted ..." when a seal does not match.
SealState verify_seal(const std::string& path);

}  // namespace cvnode::io
