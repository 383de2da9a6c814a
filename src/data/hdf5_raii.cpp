#include "data/hdf5_raii.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cstring>

#include "cvnode/errors.h"
#include "data/atomic_file.h"

namespace cvnode::h5 {

void silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

bool Handle::close() {
  if (id_ < 0) return true;
  herr_t r = 0;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: r = H5Fclose(id_); break;
    case H5I_GROUP: r = H5Gclose(id_); break;
    case H5I_DATASET: r = H5Dclose(id_); break;
    case H5I_ATTR: r = H5Aclose(id_); break;
    case H5I_DATATYPE: r = H5Tclose(id_); break;
    case H5I_DATASPACE: r = H5Sclose(id_); break;
    case H5I_GENPROP_LST: r = H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
  return r >= 0;
}

// Destructors run on error paths and for read handles, where a failed close loses nothing;
// write paths call close() and check it.
void Handle::reset() { (void)close(); }

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

File File::create_latest(const std::string& path, const std::string& name, hsize_t userblock, bool in_memory) {
  silence_errors();
  File f;
  f.path_ = path;
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE));
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  // In memory: the core driver without a backing store, a growing buffer (1 MiB steps).
  if (!fcpl.valid() || !fapl.valid() || (userblock > 0 && H5Pset_userblock(fcpl, userblock) < 0) ||
      H5Pset_obj_track_times(fcpl, false) < 0 || (in_memory && H5Pset_fapl_core(fapl, 1 << 20, false) < 0) ||
      H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0)
    throw DataError(path + ": cannot set up HDF5 file properties");
  f.h_ = Handle(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, fcpl, fapl));
  if (!f.h_.valid())
    throw DataError(path + (in_memory ? ": cannot create an HDF5 file in memory (out of memory?)" : ": cannot create HDF5 file"));
  return f;
}

File File::create_checked(const std::string& path, hsize_t userblock) {
  return create_latest(path, path, userblock, false);
}

File File::create_in_memory(const std::string& path, hsize_t userblock) {
  // The name is only the file's identity, made unique because the core driver takes equal
  // names for one file.
  static std::atomic<unsigned> counter{0};
  return create_latest(path, path + ".in-memory." + std::to_string(counter++), userblock, true);
}

std::vector<unsigned char> File::close_to_image() {
  if (H5Fflush(h_, H5F_SCOPE_GLOBAL) < 0) fail("(file)", "cannot be completed in memory (out of memory?)");
  const ssize_t n = H5Fget_file_image(h_, nullptr, 0);
  if (n <= 0) fail("(file)", "its image cannot be taken");
  std::vector<unsigned char> image(static_cast<std::size_t>(n));
  if (H5Fget_file_image(h_, image.data(), image.size()) != n) fail("(file)", "its image cannot be taken");
  if (!h_.close()) fail("(file)", "cannot be closed");
  fix_superblock_checksum(image);
  return image;
}

void File::close() {
  if (!h_.valid()) return;
  const bool flushed = H5Fflush(h_, H5F_SCOPE_GLOBAL) >= 0;
  const bool closed = h_.close();
  if (!flushed || !closed) fail("(file)", "flush or close failed (disk full or I/O error?)");
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
  // Read as null-padded: a fixed-length string that fills its n bytes (h5py's numpy bytes, no
  // terminator) keeps its last character, which a null-terminated n-byte type would drop.
  Handle mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem, n);
  H5Tset_strpad(mem, H5T_STR_NULLPAD);
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

namespace {

herr_t collect_attribute(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  return 0;
}

herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  return 0;
}

// Rows per chunk: about 256 KiB of data a chunk, never more rows than there are.
hsize_t chunk_rows(hsize_t rows, hsize_t row_bytes) {
  const hsize_t target = std::max<hsize_t>(1, (256 * 1024) / std::max<hsize_t>(1, row_bytes));
  return std::max<hsize_t>(1, std::min(rows, target));
}

}  // namespace

std::vector<std::string> File::attribute_names() const {
  std::vector<std::string> out;
  hsize_t idx = 0;
  if (H5Aiterate2(h_, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attribute, &out) < 0)
    fail("(root attributes)", "cannot be listed (corrupted file)");
  return out;
}

std::vector<std::string> File::link_names() const {
  std::vector<std::string> out;
  hsize_t idx = 0;
  if (H5Literate(h_, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, &out) < 0)
    fail("(root group)", "cannot be listed (corrupted file)");
  return out;
}

long File::int_attribute(const std::string& name) const {
  const auto v = int_array_attribute(name);
  if (v.size() != 1) fail("attribute '" + name + "'", "is not a single integer (" + std::to_string(v.size()) + " values)");
  return v[0];
}

std::vector<std::string> File::string_array_attribute(const std::string& name) const {
  if (!has_attribute(name)) fail("attribute '" + name + "'", "missing");
  Handle a(H5Aopen(h_, name.c_str(), H5P_DEFAULT));
  if (!a.valid()) fail("attribute '" + name + "'", "cannot be opened");
  Handle type(H5Aget_type(a));
  if (H5Tget_class(type) != H5T_STRING) fail("attribute '" + name + "'", "is not an array of strings");
  Handle space(H5Aget_space(a));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (H5Tis_variable_str(type) > 0) {  // as h5py writes them
    if (n < 0 || n > (1 << 20)) fail("attribute '" + name + "'", "has an implausible size");
    std::vector<char*> ptrs(static_cast<size_t>(n), nullptr);
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem, H5T_VARIABLE);
    if (n > 0 && H5Aread(a, mem, ptrs.data()) < 0) fail("attribute '" + name + "'", "cannot be read");
    std::vector<std::string> out;
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    if (n > 0) H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
    return out;
  }
  const size_t w = H5Tget_size(type);
  if (n < 0 || n > (1 << 20) || w == 0 || w > 4096 || static_cast<size_t>(n) * w > (64u << 20))
    fail("attribute '" + name + "'", "has an implausible size");
  std::string buf(static_cast<size_t>(n) * w, '\0');
  Handle mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem, w);
  H5Tset_strpad(mem, H5T_STR_NULLPAD);
  if (n > 0 && H5Aread(a, mem, buf.data()) < 0) fail("attribute '" + name + "'", "cannot be read");
  std::vector<std::string> out;
  for (hssize_t i = 0; i < n; ++i) {
    std::string v = buf.substr(static_cast<size_t>(i) * w, w);
    out.push_back(v.substr(0, v.find('\0')));
  }
  return out;
}

File::Slab File::select_rows(const std::string& dataset, hsize_t first, long count) const {
  if (!has(dataset)) fail("dataset '" + dataset + "'", "missing");
  Slab s;
  s.dataset = Handle(H5Dopen2(h_, dataset.c_str(), H5P_DEFAULT));
  if (!s.dataset.valid()) fail("dataset '" + dataset + "'", "cannot be opened (corrupted file)");
  s.file_space = Handle(H5Dget_space(s.dataset));
  const int rank = s.file_space.valid() ? H5Sget_simple_extent_ndims(s.file_space) : -1;
  if (rank != 1 && rank != 2) fail("dataset '" + dataset + "'", "has rank " + std::to_string(rank) + ", expected 1 or 2");
  hsize_t dims[2] = {0, 1};
  H5Sget_simple_extent_dims(s.file_space, dims, nullptr);
  if (first > dims[0]) fail("dataset '" + dataset + "'", "has " + std::to_string(dims[0]) + " rows, fewer than the first requested row " + std::to_string(first));
  const hsize_t rows = count < 0 ? dims[0] - first : static_cast<hsize_t>(count);
  if (first + rows > dims[0])
    fail("dataset '" + dataset + "'", "has " + std::to_string(dims[0]) + " rows, rows " + std::to_string(first) +
                                          " to " + std::to_string(first + rows) + " were requested");
  s.rows = rows;
  s.cols = rank == 2 ? dims[1] : 1;
  if (s.cols > 0 && s.rows > (hsize_t(1) << 40) / s.cols) fail("dataset '" + dataset + "'", "has an implausible size");
  const hsize_t start[2] = {first, 0}, n[2] = {rows, s.cols};
  if (H5Sselect_hyperslab(s.file_space, H5S_SELECT_SET, start, nullptr, n, nullptr) < 0)
    fail("dataset '" + dataset + "'", "rows cannot be selected");
  s.mem_space = Handle(H5Screate_simple(rank, n, nullptr));
  return s;
}

void File::read_slab(const std::string& dataset, const Slab& s, hid_t memtype, void* out) const {
  if (s.rows * s.cols == 0) return;
  if (H5Dread(s.dataset, memtype, s.mem_space, s.file_space, H5P_DEFAULT, out) < 0)
    fail("dataset '" + dataset + "'", "cannot be read (corrupted or truncated file)");
}

// The numeric row readers differ only in the element type, its HDF5 memory type and which
// stored classes convert to it: one template.
template <class T>
std::vector<T> File::read_rows(const std::string& dataset, hsize_t first, long count, hid_t memtype,
                               bool accept_float) const {
  Slab s = select_rows(dataset, first, count);
  Handle type(H5Dget_type(s.dataset));
  const H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && !(accept_float && cls == H5T_FLOAT))
    fail("dataset '" + dataset + "'", accept_float ? "is not numeric" : "is not an integer array");
  std::vector<T> out(s.rows * s.cols);
  read_slab(dataset, s, memtype, out.data());
  return out;
}

std::vector<double> File::read_double_rows(const std::string& dataset, hsize_t first, long count) const {
  return read_rows<double>(dataset, first, count, H5T_NATIVE_DOUBLE, true);
}

std::vector<std::int64_t> File::read_int64_rows(const std::string& dataset, hsize_t first, long count) const {
  return read_rows<std::int64_t>(dataset, first, count, H5T_NATIVE_INT64, false);
}

std::vector<std::uint8_t> File::read_uint8_rows(const std::string& dataset, hsize_t first, long count) const {
  return read_rows<std::uint8_t>(dataset, first, count, H5T_NATIVE_UINT8, false);
}

std::vector<std::uint64_t> File::read_uint64_rows(const std::string& dataset, hsize_t first, long count) const {
  return read_rows<std::uint64_t>(dataset, first, count, H5T_NATIVE_UINT64, false);
}

std::vector<std::string> File::read_string_rows(const std::string& dataset, hsize_t first, long count) const {
  Slab s = select_rows(dataset, first, count);
  Handle type(H5Dget_type(s.dataset));
  if (H5Tget_class(type) != H5T_STRING) fail("dataset '" + dataset + "'", "is not an array of strings");
  if (H5Tis_variable_str(type) > 0) {  // as h5py writes them
    if (s.cols != 1) fail("dataset '" + dataset + "'", "is not a one-dimensional array of strings");
    std::vector<char*> ptrs(s.rows, nullptr);
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem, H5T_VARIABLE);
    read_slab(dataset, s, mem, ptrs.data());
    std::vector<std::string> out;
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    if (s.rows > 0) H5Dvlen_reclaim(mem, s.mem_space, H5P_DEFAULT, ptrs.data());
    return out;
  }
  const size_t w = H5Tget_size(type);
  if (w == 0 || w > 4096 || s.cols != 1) fail("dataset '" + dataset + "'", "has an implausible string width");
  std::string buf(s.rows * w, '\0');
  Handle mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem, w);
  H5Tset_strpad(mem, H5T_STR_NULLPAD);
  read_slab(dataset, s, mem, buf.data());
  std::vector<std::string> out(s.rows);
  for (hsize_t i = 0; i < s.rows; ++i) {
    const char* p = buf.data() + i * w;
    out[i].assign(p, strnlen(p, w));
  }
  return out;
}

void File::write_string_attribute(const std::string& name, const std::string& value) const {
  // Null-terminated, as C and h5py write them (and as string_attribute reads them).
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, value.size() + 1);
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(h_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a, type, value.c_str()) < 0 || !a.close())
    fail("attribute '" + name + "'", "cannot be written");
}

void File::write_string_array_attribute(const std::string& name, const std::vector<std::string>& values) const {
  size_t w = 1;
  for (const auto& v : values) w = std::max(w, v.size());
  std::string buf(values.size() * w, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), buf.begin() + i * w);
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, w);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle a(H5Acreate2(h_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || (n > 0 && H5Awrite(a, type, buf.data()) < 0) || !a.close())
    fail("attribute '" + name + "'", "cannot be written");
}

void File::write_int_attribute(const std::string& name, long value) const {
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(h_, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a, H5T_NATIVE_LONG, &value) < 0 || !a.close())
    fail("attribute '" + name + "'", "cannot be written");
}

void File::write_array(const std::string& dataset, hid_t memtype, hid_t filetype, const void* data,
                       std::vector<hsize_t> dims) const {
  if (dims.empty() || dims.size() > 2) fail("dataset '" + dataset + "'", "rank must be 1 or 2");
  const int rank = static_cast<int>(dims.size());
  const hsize_t cols = rank == 2 ? dims[1] : 1;
  // An empty dataset's first dimension is left extendible: a chunk may not exceed a fixed extent.
  const hsize_t maxdims[2] = {dims[0] == 0 ? H5S_UNLIMITED : dims[0], cols};
  Handle space(H5Screate_simple(rank, dims.data(), maxdims));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  hsize_t chunk[2] = {chunk_rows(dims[0], cols * H5Tget_size(filetype)), std::max<hsize_t>(1, cols)};
  // Chunking needs non-zero chunk dimensions; an empty dataset still gets its filters so that
  // every dataset in the file is checksummed alike.
  if (!dcpl.valid() || H5Pset_obj_track_times(dcpl, false) < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
      H5Pset_fletcher32(dcpl) < 0 || H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 4) < 0)
    fail("dataset '" + dataset + "'", "cannot set up chunking and compression");
  if (rank == 2 && dims[1] == 0) fail("dataset '" + dataset + "'", "has zero columns");
  Handle d(H5Dcreate2(h_, dataset.c_str(), filetype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!d.valid()) fail("dataset '" + dataset + "'", "cannot be created");
  if (dims[0] * cols > 0 && H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail("dataset '" + dataset + "'", "cannot be written");
  // The close writes the chunks still in the chunk cache.
  if (!d.close()) fail("dataset '" + dataset + "'", "cannot be completed (its chunks were not written)");
}

void File::write_doubles(const std::string& dataset, const double* data, std::vector<hsize_t> dims) const {
  write_array(dataset, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, data, std::move(dims));
}

void File::write_int64(const std::string& dataset, const std::int64_t* data, hsize_t n) const {
  write_array(dataset, H5T_NATIVE_INT64, H5T_STD_I64LE, data, {n});
}

void File::write_uint64(const std::string& dataset, const std::uint64_t* data, hsize_t n) const {
  write_array(dataset, H5T_NATIVE_UINT64, H5T_STD_U64LE, data, {n});
}

void File::write_uint8(const std::string& dataset, const std::uint8_t* data, std::vector<hsize_t> dims) const {
  write_array(dataset, H5T_NATIVE_UINT8, H5T_STD_U8LE, data, std::move(dims));
}

void File::write_strings(const std::string& dataset, const std::vector<std::string>& values) const {
  size_t w = 1;
  for (const auto& v : values) w = std::max(w, v.size());
  std::string buf(values.size() * w, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), buf.begin() + i * w);
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, w);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  write_array(dataset, type, type, buf.data(), {values.size()});
}

// Bob Jenkins' lookup3 (hashlittle, byte by byte), which HDF5 uses for its metadata checksums.
std::uint32_t lookup3(const unsigned char* k, std::size_t length, std::uint32_t init) {
  auto rot = [](std::uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  std::uint32_t a, b, c;
  a = b = c = 0xdeadbeefU + static_cast<std::uint32_t>(length) + init;
  auto word = [](const unsigned char* p) {
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
  };
  while (length > 12) {
    a += word(k);
    b += word(k + 4);
    c += word(k + 8);
    a -= c; a ^= rot(c, 4);  c += b;
    b -= a; b ^= rot(a, 6);  a += c;
    c -= b; c ^= rot(b, 8);  b += a;
    a -= c; a ^= rot(c, 16); c += b;
    b -= a; b ^= rot(a, 19); a += c;
    c -= b; c ^= rot(b, 4);  b += a;
    length -= 12;
    k += 12;
  }
  switch (length) {
    case 12: c += std::uint32_t(k[11]) << 24; [[fallthrough]];
    case 11: c += std::uint32_t(k[10]) << 16; [[fallthrough]];
    case 10: c += std::uint32_t(k[9]) << 8; [[fallthrough]];
    case 9: c += k[8]; [[fallthrough]];
    case 8: b += std::uint32_t(k[7]) << 24; [[fallthrough]];
    case 7: b += std::uint32_t(k[6]) << 16; [[fallthrough]];
    case 6: b += std::uint32_t(k[5]) << 8; [[fallthrough]];
    case 5: b += k[4]; [[fallthrough]];
    case 4: a += std::uint32_t(k[3]) << 24; [[fallthrough]];
    case 3: a += std::uint32_t(k[2]) << 16; [[fallthrough]];
    case 2: a += std::uint32_t(k[1]) << 8; [[fallthrough]];
    case 1: a += k[0]; break;
    case 0: return c;
  }
  c ^= b; c -= rot(b, 14);
  a ^= c; a -= rot(c, 11);
  b ^= a; b -= rot(a, 25);
  c ^= b; c -= rot(b, 16);
  a ^= c; a -= rot(c, 4);
  b ^= a; b -= rot(a, 14);
  c ^= b; c -= rot(b, 24);
  return c;
}

void fix_superblock_checksum(std::vector<unsigned char>& image) {
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (image.size() < 12 || std::memcmp(image.data(), kSignature, 8) != 0)
    throw DataError("HDF5 file image: no superblock at its start");
  const int version = image[8];
  if (version < 2) return;  // versions 0 and 1 carry no checksum
  // Signature, version, sizes of offsets and lengths, flags, then four addresses.
  const std::size_t n = 12 + 4 * static_cast<std::size_t>(image[9]);
  if (image.size() < n + 4) throw DataError("HDF5 file image: truncated superblock");
  const std::uint32_t sum = lookup3(image.data(), n, 0);
  for (int i = 0; i < 4; ++i) image[n + i] = static_cast<unsigned char>(sum >> (8 * i));
}

void write_sealed_file(const std::string& path, const std::function<void(const File&)>& fill) {
  std::vector<unsigned char> image;
  {
    File f = File::create_in_memory(path, io::kSealBytes);
    fill(f);
    image = f.close_to_image();
  }
  io::write_sealed(path, image);
}

}  // namespace cvnode::h5
