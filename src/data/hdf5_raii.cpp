#include "data/hdf5_raii.h"

#include <mutex>

#include "cvnode/errors.h"

namespace cvnode::h5 {

void silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

void File::fail(const std::string& field, const std::string& what) const {
  throw DataError(path_ + ": " + field + ": " + what);
}

File File::open_read(const std::string& path) {
  silence_errors();
  File f;
  f.path_ = path;
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw DataError(path + ": cannot open as HDF5 (missing, unreadable, truncated or not an HDF5 file)");
  f.h_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.h_.valid()) throw DataError(path + ": cannot open as HDF5 (corrupted or truncated file)");
  return f;
}

File File::create(const std::string& path) {
  silence_errors();
  File f;
  f.path_ = path;
  f.h_ = Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!f.h_.valid()) throw DataError(path + ": cannot create HDF5 file");
  return f;
}

void File::flush() const {
  if (H5Fflush(h_, H5F_SCOPE_GLOBAL) < 0) fail("(file)", "flush failed");
}

bool File::has(const std::string& name) const { return H5Lexists(h_, name.c_str(), H5P_DEFAULT) > 0; }
bool File::has_attribute(const std::string& name) const { return H5Aexists(h_, name.c_str()) > 0; }

std::string File::string_attribute(const std::string& name) const {
  if (!has_attribute(name)) fail("attribute '" + name + "'", "missing");
  Handle a(H5Aopen(h_, name.c_str(), H5P_DEFAULT));
  if (!a.valid()) fail("attribute '" + name + "'", "cannot be opened");
  Handle type(H5Aget_type(a));
  if (H5Tget_class(type) != H5T_STRING) fail("attribute '" + name + "'", "is not a string");
  Handle space(H5Aget_space(a));
  if (H5Sget_simple_extent_npoints(space) != 1) fail("attribute '" + name + "'", "is not a scalar string");
  if (H5Tis_variable_str(type) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));
    char* s = nullptr;
    if (H5Aread(a, mem, &s) < 0 || !s) fail("attribute '" + name + "'", "cannot be read");
    std::string out(s);
    H5free_memory(s);
    return out;
  }
  const size_t n = H5Tget_size(type);
  if (n == 0 || n > (1u << 20)) fail("attribute '" + name + "'", "has an implausible length");
  std::string out(n, '\0');
  Handle mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem, n);
  if (H5Aread(a, mem, out.data()) < 0) fail("attribute '" + name + "'", "cannot be read");
  out.resize(out.find('\0') == std::string::npos ? n : out.find('\0'));
  return out;
}

std::vector<long> File::int_array_attribute(const std::string& name) const {
  if (!has_attribute(name)) fail("attribute '" + name + "'", "missing");
  Handle a(H5Aopen(h_, name.c_str(), H5P_DEFAULT));
  if (!a.valid()) fail("attribute '" + name + "'", "cannot be opened");
  Handle type(H5Aget_type(a));
  if (H5Tget_class(type) != H5T_INTEGER) fail("attribute '" + name + "'", "is not an integer array");
  Handle space(H5Aget_space(a));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0 || n > (1 << 24)) fail("attribute '" + name + "'", "has an implausible size");
  std::vector<long> out(static_cast<size_t>(n));
  if (H5Aread(a, H5T_NATIVE_LONG, out.data()) < 0) fail("attribute '" + name + "'", "cannot be read");
  return out;
}

std::vector<hsize_t> File::shape(const std::string& dataset) const {
  if (!has(dataset)) fail("dataset '" + dataset + "'", "missing");
  Handle d(H5Dopen2(h_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) fail("dataset '" + dataset + "'", "cannot be opened");
  Handle space(H5Dget_space(d));
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail("dataset '" + dataset + "'", "has an unreadable shape");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

std::vector<double> File::read_doubles(const std::string& dataset, int rank) const {
  const auto dims = shape(dataset);
  if (rank >= 0 && static_cast<int>(dims.size()) != rank)
    fail("dataset '" + dataset + "'", "has rank " + std::to_string(dims.size()) + ", expected " + std::to_string(rank));
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  Handle d(H5Dopen2(h_, dataset.c_str(), H5P_DEFAULT));
  Handle type(H5Dget_type(d));
  if (H5Tget_class(type) != H5T_FLOAT && H5Tget_class(type) != H5T_INTEGER)
    fail("dataset '" + dataset + "'", "is not numeric");
  std::vector<double> out(n);
  if (n > 0 && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail("dataset '" + dataset + "'", "cannot be read (corrupted or truncated file)");
  return out;
}

double File::read_scalar(const std::string& dataset) const {
  auto v = read_doubles(dataset);
  if (v.size() != 1) fail("dataset '" + dataset + "'", "is not a scalar (" + std::to_string(v.size()) + " values)");
  return v[0];
}

}  // namespace cvnode::h5
