// RAII handles over the HDF5 C API and typed readers whose failures become one readable
// cvnode::DataError naming the file and the field. HDF5's automatic error-stack printing is
// switched off for the whole process the first time any of this is used.
//
// Files that cvnode publishes are built in memory (create_in_memory, HDF5's core driver) and
// written by io::write_sealed, never by HDF5 itself: a full disk then fails a checked write()
// of cvnode's, not HDF5's close path, which in libhdf5 1.10 can leave a half-closed file behind
// that crashes the library's shutdown at exit.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace cvnode::h5 {

// Turns off HDF5's automatic error printing (idempotent, thread-safe).
void silence_errors();

class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) { reset(); id_ = o.id_; o.id_ = H5I_INVALID_HID; }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Closes now and returns whether the close succeeded (a dataset's close writes its cached
  // chunks, a file's close its metadata).
  bool close();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// A file opened for reading, with its path kept for messages.
class File {
 public:
  // Throws DataError "FILE: cannot open as HDF5 (...)" for a missing, truncated or non-HDF5 file.
  static File open_read(const std::string& path);
  // Creates (truncates) a file for writing.
  static File create(const std::string& path);
  // Creates (truncates) a file in the newest format of the installed library (v1.10): every
  // metadata block carries a checksum, so corruption is reported instead of misread. No
  // timestamps are stored, so the same content gives the same bytes. `userblock` bytes (0 or a
  // power of two >= 512) are reserved at the start for cvnode's whole-file seal.
  static File create_checked(const std::string& path, hsize_t userblock);
  // A file that lives in memory only (nothing is written to disk until close_to_image's bytes
  // are); `path` names it in messages. `userblock` as for create_checked.
  static File create_in_memory(const std::string& path, hsize_t userblock);
  // Flushes and closes a file of create_in_memory and returns its bytes after the user block
  // (what io::write_sealed puts behind the seal). Throws DataError naming the file.
  std::vector<unsigned char> close_to_image();
  // Closes the file now (flush and close checked), instead of at destruction.
  void close();
  const std::string& path() const { return path_; }
  hid_t id() const { return h_.get(); }
  void flush() const;

  bool has(const std::string& name) const;           // a link (dataset or group) in the root
  bool has_attribute(const std::string& name) const; // an attribute on the root group

  // Readers: each throws DataError naming the file and the field.
  std::string string_attribute(const std::string& name) const;
  std::vector<long> int_array_attribute(const std::string& name) const;
  std::vector<hsize_t> shape(const std::string& dataset) const;
  // Reads a float64 dataset of any rank as a flat row-major vector; checks the rank if >= 0.
  std::vector<double> read_doubles(const std::string& dataset, int rank = -1) const;
  double read_scalar(const std::string& dataset) const;

  // Names of the root group's attributes and links, in name order.
  std::vector<std::string> attribute_names() const;
  std::vector<std::string> link_names() const;
  long int_attribute(const std::string& name) const;
  std::vector<std::string> string_array_attribute(const std::string& name) const;

  // Hyperslab readers over the first dimension: rows [first, first + count) of a dataset of rank
  // 1 or 2 (count = -1: to the end), flat row-major. Only those rows' chunks are read.
  std::vector<double> read_double_rows(const std::string& dataset, hsize_t first, long count = -1) const;
  std::vector<std::int64_t> read_int64_rows(const std::string& dataset, hsize_t first, long count = -1) const;
  std::vector<std::uint8_t> read_uint8_rows(const std::string& dataset, hsize_t first, long count = -1) const;
  std::vector<std::uint64_t> read_uint64_rows(const std::string& dataset, hsize_t first, long count = -1) const;
  std::vector<std::string> read_string_rows(const std::string& dataset, hsize_t first, long count = -1) const;

  // Writers. Datasets are chunked along the first dimension, shuffled, deflate-compressed and
  // Fletcher-32 checksummed; `dims` has rank 1 or 2 (row-major data).
  void write_string_attribute(const std::string& name, const std::string& value) const;
  void write_string_array_attribute(const std::string& name, const std::vector<std::string>& values) const;
  void write_int_attribute(const std::string& name, long value) const;
  void write_doubles(const std::string& dataset, const double* data, std::vector<hsize_t> dims) const;
  void write_int64(const std::string& dataset, const std::int64_t* data, hsize_t n) const;
  void write_uint64(const std::string& dataset, const std::uint64_t* data, hsize_t n) const;
  void write_uint8(const std::string& dataset, const std::uint8_t* data, std::vector<hsize_t> dims) const;
  void write_strings(const std::string& dataset, const std::vector<std::string>& values) const;
 private:
  std::string path_;
  Handle h_;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const;
  // The file of create_checked (on disk, `name` = `path`) or create_in_memory (`name` unique).
  static File create_latest(const std::string& path, const std::string& name, hsize_t userblock, bool in_memory);
  // The selection of rows [first, first + count) of a rank-1 or rank-2 dataset.
  struct Slab {
    Handle dataset, file_space, mem_space;
    hsize_t rows = 0, cols = 1;
  };
  Slab select_rows(const std::string& dataset, hsize_t first, long count) const;
  void read_slab(const std::string& dataset, const Slab& s, hid_t memtype, void* out) const;
  // Rows of a numeric dataset read as T (memtype): integer classes always, float only when
  // `accept_float`.
  template <class T>
  std::vector<T> read_rows(const std::string& dataset, hsize_t first, long count, hid_t memtype,
                           bool accept_float) const;
  void write_array(const std::string& dataset, hid_t memtype, hid_t filetype, const void* data,
                   std::vector<hsize_t> dims) const;
};

// Builds an HDF5 file in memory with `fill` and publishes it at `path` sealed and atomically
// (io::write_sealed): `path` is either its previous content or the complete new file. Throws
// DataError naming `path`.
void write_sealed_file(const std::string& path, const std::function<void(const File&)>& fill);

// Superblock versions 2 and 3 end with a checksum (Jenkins' lookup3) that libhdf5 1.10's
// H5Fget_file_image leaves as it was while the file was open for writing, although the image
// clears the "open for writing" flag: recomputes it so that the image opens. Exposed for tests.
void fix_superblock_checksum(std::vector<unsigned char>& image);
std::uint32_t lookup3(const unsigned char* data, std::size_t n, std::uint32_t init);

}  // namespace cvnode::h5
