// Whole-file integrity for everything cvnode writes (datasets, checkpoints, CSV, metrics, JSON):
// bytes go to a temporary file in the destination's folder through checked system calls, which
// is then fsynced and renamed over the destination, so a reader or a crash at any instant sees
// the old file or the new one, never a part, and a full disk or an I/O error becomes one
// DataError naming the destination (the temporary file is removed, the destination untouched).
// HDF5 files also carry a seal (length and checksum of every byte after the seal itself) that
// lets a reader reject a truncated or corrupted file before HDF5 parses a single byte of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace cvnode::io {

// Bytes reserved at the start of each sealed file (an HDF5 user block, ignored by HDF5 tools).
constexpr std::uint64_t kSealBytes = 512;

// One atomic write: write() appends to FINAL.tmp.PID.N, commit() publishes it as FINAL.
class AtomicWrite {
 public:
  explicit AtomicWrite(std::string final_path);
  // Removes the temporary file unless commit() completed.
  ~AtomicWrite();
  AtomicWrite(const AtomicWrite&) = delete;
  AtomicWrite& operator=(const AtomicWrite&) = delete;

  const std::string& temp_path() const { return temp_; }
  const std::string& final_path() const { return final_; }
  // Appends bytes (the temporary file is created on first use). Throws DataError
  // "FINAL: cannot write: REASON" (e.g. "No space left on device").
  void write(const void* data, std::size_t n);
  // fsync and close the temporary file (both checked), rename it over FINAL, fsync the folder.
  void commit();

 private:
  void open_temp();
  [[noreturn]] void fail(const std::string& what);
  std::string final_, temp_;
  int fd_ = -1;
  bool done_ = false;
};

// Writes an HDF5 file image (the bytes after its user block, see h5::File::close_to_image) to
// `final_path` with the seal in front, atomically.
void write_sealed(const std::string& final_path, const std::vector<unsigned char>& image);

// Publishes a file that another program wrote completely at `temp_path` (gnuplot's PNGs): fsync,
// rename over `final_path`, fsync the folder. The temporary file is removed on failure.
void publish(const std::string& temp_path, const std::string& final_path);

// Writes `text` to `final_path` atomically (no seal: CSV, TOML, JSON).
void write_text(const std::string& final_path, const std::string& text);

// A text file written through a std::ostream and published atomically by commit(). Stream
// errors (a full disk) are recorded and reported by commit() with the system's reason; without
// commit() nothing is published. `keep_existing`: the file starts with FINAL's current content
// (an atomic append; FINAL stays as it was if the append fails).
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::string& final_path, bool keep_existing = false);
  ~AtomicOutput();
  std::ostream& stream();
  void commit();
  const std::string& final_path() const;

 private:
  class Buffer;
  std::unique_ptr<Buffer> buf_;
  std::unique_ptr<std::ostream> os_;
};

// Removes FINAL.tmp.PID.N files of processes that no longer exist (left by a kill between a
// write and its rename); commit() calls it after every successful write of FINAL.
void remove_stale_temporaries(const std::string& final_path);

enum class SealState { Valid, Absent };

// Absent: the file has no cvnode seal (written by another tool); nothing was checked.
// Throws DataError "PATH: truncated ..." or "PATH: corrupted ..." when a seal does not match.
SealState verify_seal(const std::string& path);

// A 64-bit fingerprint of a file's content with its size: the seal's checksum for a sealed file
// (verified), else the same checksum computed over the whole file. Stored in checkpoints so that
// a resume notices that the data file changed. Throws DataError naming the file.
std::string content_fingerprint(const std::string& path);

// Throws OptionsError "WHAT: OUTPUT is the same file as the input INPUT" when `output` already
// exists and is the same file (same device and inode: also through links) as one of `inputs`.
void check_not_input(const std::string& what, const std::string& output, const std::vector<std::string>& inputs);

}  // namespace cvnode::io
