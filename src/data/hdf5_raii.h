// RAII handles over the HDF5 C API and typed readers whose failures become one readable
// cvnode::DataError naming the file and the field. HDF5's automatic error-stack printing is
// switched off for the whole process the first time any of this is used.
#pragma once

#include <hdf5.h>

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

 private:
  std::string path_;
  Handle h_;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const;
};

}  // namespace cvnode::h5
