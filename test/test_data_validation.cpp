// Every invalid input ends in a DataError whose message names the file, the series, the field
// and the value.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE data_validation
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "cvnode/csv.h"
#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "cvnode/checkpoint.h"
#include "data/atomic_file.h"
#include "data/hdf5_raii.h"
#include "test_util.h"

// libhdf5's metadata checksum (exported, declared in its private headers only).
extern "C" std::uint32_t H5_checksum_metadata(const void* data, std::size_t len, std::uint32_t initval);

using namespace cvnode;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

std::string temp_dir() {
  static const std::string dir = cvnode::test::make_temp_dir("data_validation");
  return dir;
}

// The arrays of a file as another tool might write them (no seal), each field editable.
struct Raw {
  long version = 1;
  std::string format = "cvnode-dataset";
  std::vector<std::string> names{"x", "y"}, units{"m", "s"};
  std::vector<std::string> ids{"s0", "s1"};
  std::vector<double> t0{0, 0};
  std::vector<std::int64_t> offsets{0, 3, 5};
  std::vector<double> times{0.5, 1.0, 2.0, 0.1, 0.2};
  std::vector<double> values{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<std::uint8_t> mask = std::vector<std::uint8_t>(10, 1);
  hsize_t value_rows = 5, value_cols = 2;
  bool skip_units = false;
  std::string extra_attribute;

  std::string write(const std::string& name) const {
    const std::string path = temp_dir() + "/" + name + ".h5";
    h5::File f = h5::File::create_checked(path, 0);
    f.write_string_attribute("format", format);
    f.write_int_attribute("format_version", version);
    f.write_string_array_attribute("channel_names", names);
    if (!skip_units) f.write_string_array_attribute("channel_units", units);
    if (!extra_attribute.empty()) f.write_string_attribute(extra_attribute, "1");
    f.write_strings("series_id", ids);
    f.write_doubles("t0", t0.data(), {t0.size()});
    f.write_int64("offsets", offsets.data(), offsets.size());
    f.write_doubles("times", times.data(), {times.size()});
    f.write_doubles("values", values.data(), {value_rows, value_cols});
    f.write_uint8("mask", mask.data(), {value_rows, value_cols});
    f.close();
    return path;
  }
};

// Reads `path` and checks that the DataError's message contains every fragment.
void expect_error(const std::function<void()>& read, const std::vector<std::string>& fragments) {
  try {
    read();
    BOOST_ERROR("no DataError; expected one mentioning '" + fragments.front() + "'");
  } catch (const DataError& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE("message: " << msg);
    for (const auto& f : fragments) BOOST_CHECK_MESSAGE(msg.find(f) != std::string::npos, "'" << f << "' not in: " << msg);
  }
}

void expect_read_error(const std::string& path, const std::vector<std::string>& fragments) {
  std::vector<std::string> all = fragments;
  all.insert(all.begin(), path);
  expect_error([&] { Dataset::read(path); }, all);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_raw_writer_makes_a_valid_file) {
  const Dataset d = Dataset::read(Raw{}.write("valid"));
  BOOST_CHECK_EQUAL(d.size(), 2u);
  BOOST_CHECK_EQUAL(d.series(1).values(1, 1), 10.0);
  BOOST_CHECK_EQUAL(d.channel_units()[0], "m");
}

BOOST_AUTO_TEST_CASE(non_increasing_times) {
  Raw r;
  r.times = {0.5, 1.0, 1.0, 0.1, 0.2};
  expect_read_error(r.write("repeat"), {"series 's0' (index 0)", "field 'times'", "strictly increasing",
                                        "times[1] = 1", "times[2] = 1"});
  r.times = {0.5, 1.0, 2.0, 0.3, 0.2};
  expect_read_error(r.write("decrease"), {"series 's1' (index 1)", "times[0] = 0.29999", "times[1] = 0.2"});
}

BOOST_AUTO_TEST_CASE(non_finite_times) {
  Raw r;
  r.times = {0.5, kNaN, 2.0, 0.1, 0.2};
  expect_read_error(r.write("nan_time"), {"series 's0'", "field 'times'", "times[1] = nan is not finite"});
  r.times = {0.5, 1.0, 2.0, 0.1, kInf};
  expect_read_error(r.write("inf_time"), {"series 's1'", "times[1] = inf is not finite"});
  r.times = {0.5, 1.0, 2.0, 0.1, 0.2};
  r.t0 = {0, kNaN};
  expect_read_error(r.write("nan_t0"), {"series 's1'", "field 't0'", "not finite"});
  r.t0 = {0.75, 0};
  expect_read_error(r.write("t0_late"), {"series 's0'", "times[0] = 0.5 lies before t0 = 0.75"});
}

BOOST_AUTO_TEST_CASE(unmasked_nan_and_inf_values) {
  Raw r;
  r.values[7] = kNaN;  // row 3 = series s1 row 0, channel 1
  expect_read_error(r.write("nan_value"), {"series 's1' (index 1)", "field 'values'", "values(0, 1) = nan",
                                           "not masked"});
  r.mask[7] = 0;
  BOOST_CHECK_EQUAL(Dataset::read(r.write("nan_masked")).series(1).mask(0, 1), 0.0);
  r.values[2] = -kInf;
  expect_read_error(r.write("inf_value"), {"series 's0'", "values(1, 0) = -inf"});
  r.values[2] = 1;
  r.mask[2] = 7;
  expect_read_error(r.write("bad_mask"), {"series 's0'", "field 'mask'", "mask(1, 0) = 7 is neither 0 nor 1"});
}

BOOST_AUTO_TEST_CASE(shape_mismatches) {
  Raw r;
  r.values.resize(12);
  r.mask.resize(12, 1);
  r.value_rows = 6;
  expect_read_error(r.write("values_rows"), {"dataset 'values'", "shape 6 x 2", "expected 5 x 2"});
  Raw c;
  c.values.resize(15, 1.0);
  c.mask.resize(15, 1);
  c.value_cols = 3;
  expect_read_error(c.write("values_cols"), {"dataset 'values'", "shape 5 x 3", "expected 5 x 2"});
  Raw o;
  o.offsets = {0, 3, 4};
  expect_read_error(o.write("offsets_end"), {"dataset 'offsets'", "offsets[2] = 4", "expected the number of observations 5"});
  Raw i;
  i.ids = {"s0", "s1", "s2"};
  expect_read_error(i.write("ids"), {"dataset 'series_id'", "shape 3", "expected 2"});
  Raw dup;
  dup.ids = {"s0", "s0"};
  expect_read_error(dup.write("dup"), {"series 's0' (index 1)", "field 'series_id': duplicate id"});

  // In memory, too.
  Dataset d({"x", "y"}, {});
  Series s;
  s.id = "bad";
  s.times = Vector::LinSpaced(3, 0, 1);
  s.values = Matrix::Zero(2, 2);
  expect_error([&] { d.add(s); }, {"series 'bad' (index 0)", "field 'values'", "shape 2 x 2, expected 3 x 2"});
  s.values = Matrix::Zero(3, 2);
  s.mask = Matrix::Ones(3, 1);
  expect_error([&] { d.add(s); }, {"field 'mask'", "shape 3 x 1, expected 3 x 2"});
}

BOOST_AUTO_TEST_CASE(unknown_missing_attributes_and_versions) {
  Raw r;
  r.extra_attribute = "colour";
  expect_read_error(r.write("unknown_attr"), {"attribute 'colour'", "unknown attribute"});
  Raw m;
  m.skip_units = true;
  expect_read_error(m.write("missing_units"), {"attribute 'channel_units'", "missing"});
  Raw v;
  v.version = kDatasetFormatVersion + 1;
  expect_read_error(v.write("newer"), {"attribute 'format_version'", std::to_string(kDatasetFormatVersion + 1) +
                                       " is newer than this cvnode reads (" + std::to_string(kDatasetFormatVersion) + ")"});
  Raw f;
  f.format = "something-else";
  expect_read_error(f.write("format"), {"attribute 'format'", "'something-else'", "expected 'cvnode-dataset'"});
  Raw u;
  u.units = {"m"};
  expect_read_error(u.write("units"), {"attributes 'channel_names'/'channel_units'", "1 channel units for 2 channels"});
}

BOOST_AUTO_TEST_CASE(empty_series) {
  Raw r;
  r.offsets = {0, 5, 5};
  r.times = {0.5, 1, 2, 3, 4};
  expect_read_error(r.write("empty"), {"series 's1' (index 1)", "field 'times'", "the series is empty"});
  Dataset d({"x"}, {});
  Series s;
  s.id = "nothing";
  s.values = Matrix::Zero(0, 1);
  expect_error([&] { d.add(s); }, {"series 'nothing'", "the series is empty"});
}

BOOST_AUTO_TEST_CASE(not_hdf5_and_truncated) {
  const std::string text = temp_dir() + "/text.h5";
  std::ofstream(text) << "id,time\n";
  expect_read_error(text, {"cannot open as HDF5"});
  expect_read_error(temp_dir() + "/does_not_exist.h5", {"cannot open"});
  Dataset d({"x"}, {"m"});
  Series s;
  s.id = "a";
  s.times = Vector::LinSpaced(100, 0, 1);
  s.values = Matrix::Random(100, 1);
  d.add(s);
  const std::string path = temp_dir() + "/cut.h5";
  d.write(path);
  BOOST_REQUIRE_EQUAL(truncate(path.c_str(), 2000), 0);
  expect_read_error(path, {"truncated or corrupted file", "its seal says"});
}

BOOST_AUTO_TEST_CASE(csv_bad_rows_name_the_line) {
  auto csv = [](const std::string& name, const std::string& text) {
    const std::string path = temp_dir() + "/" + name + ".csv";
    std::ofstream(path) << text;
    return path;
  };
  CsvImportOptions o;
  o.id_column = "id";
  o.value_columns = {"x", "y"};
  std::string p = csv("fields", "id,time,x,y\na,0,1,2\na,1,1\n");
  expect_error([&] { import_csv(p, o); }, {p + ":3:", "3 fields, the header has 4"});
  p = csv("number", "id,time,x,y\na,0,1,2\n\na,1,1,abc\n");
  expect_error([&] { import_csv(p, o); }, {p + ":4:", "column 'y'", "value 'abc' is not a finite number"});
  p = csv("time", "id,time,x,y\na,0,1,2\nb,,1,2\n");
  expect_error([&] { import_csv(p, o); }, {p + ":3:", "column 'time'", "time '' is not a finite number"});
  p = csv("inf", "id,time,x,y\na,0,inf,2\n");
  expect_error([&] { import_csv(p, o); }, {p + ":2:", "value 'inf'"});
  p = csv("dup", "id,time,x,y\na,0,1,2\nb,0,1,2\na,0,3,4\n");
  expect_error([&] { import_csv(p, o); }, {p + ":4:", "series 'a'", "time 0 repeats line 2"});
  p = csv("column", "id,t,x,y\na,0,1,2\n");
  expect_error([&] { import_csv(p, o); }, {p + ":", "time column 'time' not in the header (id, t, x, y)"});
  p = csv("quote", "id,time,x,y\n\"a,0,1,2\n");
  expect_error([&] { import_csv(p, o); }, {p + ":2:", "unterminated quote"});
  p = csv("allmissing", "time,u,v\n0,1,\n1,2,\n");
  CsvImportOptions w;
  w.wide = true;
  expect_error([&] { import_csv(p, w); }, {p + ":", "series 'v'", "empty series"});
}

// Variable-length strings, as h5py writes them, are read like fixed-length ones.
BOOST_AUTO_TEST_CASE(variable_length_strings_are_accepted) {
  Raw r;
  r.ids = {"x"};  // placeholder, replaced below
  r.t0 = {0};
  r.offsets = {0, 5};
  r.times = {0.5, 1, 2, 3, 4};
  const std::string path = temp_dir() + "/vlen.h5";
  {
    h5::File f = h5::File::create_checked(path, 0);
    f.write_string_attribute("format", "cvnode-dataset");
    f.write_int_attribute("format_version", 1);
    h5::Handle str(H5Tcopy(H5T_C_S1));
    H5Tset_size(str, H5T_VARIABLE);
    const char* names[] = {"speed", "angle"};
    const char* units[] = {"m/s", "rad"};
    const hsize_t two = 2, one = 1;
    h5::Handle space2(H5Screate_simple(1, &two, nullptr)), space1(H5Screate_simple(1, &one, nullptr));
    h5::Handle an(H5Acreate2(f.id(), "channel_names", str, space2, H5P_DEFAULT, H5P_DEFAULT));
    H5Awrite(an, str, names);
    h5::Handle au(H5Acreate2(f.id(), "channel_units", str, space2, H5P_DEFAULT, H5P_DEFAULT));
    H5Awrite(au, str, units);
    const char* ids[] = {"run-001"};
    h5::Handle ds(H5Dcreate2(f.id(), "series_id", str, space1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Dwrite(ds, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
    f.write_doubles("t0", r.t0.data(), {1});
    f.write_int64("offsets", r.offsets.data(), 2);
    f.write_doubles("times", r.times.data(), {5});
    f.write_doubles("values", r.values.data(), {5, 2});
    f.write_uint8("mask", r.mask.data(), {5, 2});
  }
  const Dataset d = Dataset::read(path);
  BOOST_CHECK_EQUAL(d.id(0), "run-001");
  BOOST_CHECK(d.channel_names() == (std::vector<std::string>{"speed", "angle"}));
  BOOST_CHECK_EQUAL(d.channel_units()[1], "rad");
  BOOST_CHECK_EQUAL(d.series(0).values(4, 1), 10.0);
}

// Issue 18: h5py writes a numpy bytes attribute (np.bytes_("cvnode-dataset")) as a fixed-length
// string of exactly its characters, null-padded, without a terminator; it was read without its
// last character ("'cvnode-datase', expected 'cvnode-dataset'"). Written here with the C API as
// h5py does (python3-h5py is not needed for it).
BOOST_AUTO_TEST_CASE(fixed_length_strings_as_h5py_writes_them_keep_their_last_character) {
  Raw r;
  const std::string path = r.write("h5py_fixed");
  {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    BOOST_REQUIRE(f >= 0);
    BOOST_REQUIRE(H5Adelete(f, "format") >= 0);
    const std::string value = "cvnode-dataset";
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, value.size());  // no room for a terminator, as h5py
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
    BOOST_REQUIRE(H5Awrite(a, type, value.data()) >= 0);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(f);
  }
  const h5::File f = h5::File::open_read(path);
  BOOST_TEST(f.string_attribute("format") == "cvnode-dataset");
  BOOST_TEST(Dataset::read(path).size() == 2u);
}

// Issue 19 case 11: a checkpoint given where a dataset is read is named as such (it said
// "unknown attribute 'epoch'").
BOOST_AUTO_TEST_CASE(a_checkpoint_read_as_a_dataset_is_named) {
  Checkpoint c;
  c.epoch = 3;
  const std::string path = temp_dir() + "/a_checkpoint.h5";
  c.write(path);
  expect_read_error(path, {path, "this is a checkpoint of `cvnode fit`, not a dataset"});
}

// Files are built in memory and written by cvnode (disk-full safety, atomic_file.h): their bytes
// are those that libhdf5 writes itself for the same content, superblock checksum included.
BOOST_AUTO_TEST_CASE(in_memory_files_are_byte_identical_to_files_written_by_libhdf5) {
  auto fill = [](const h5::File& f) {
    f.write_string_attribute("format", "anything");
    const std::vector<double> x{1, 2, 3, 4.5};
    f.write_doubles("x", x.data(), {2, 2});
  };
  const std::string direct = temp_dir() + "/direct.h5", ours = temp_dir() + "/ours.h5";
  {
    h5::File f = h5::File::create_checked(direct, io::kSealBytes);
    fill(f);
    f.close();
  }
  h5::write_sealed_file(ours, fill);
  std::ifstream a(direct, std::ios::binary), b(ours, std::ios::binary);
  const std::string da((std::istreambuf_iterator<char>(a)), {}), db((std::istreambuf_iterator<char>(b)), {});
  BOOST_REQUIRE_EQUAL(da.size(), db.size());
  // The first 512 bytes are the user block (cvnode's seal in ours, zeros in the direct file).
  BOOST_TEST((da.substr(io::kSealBytes) == db.substr(io::kSealBytes)));
  BOOST_TEST((io::verify_seal(ours) == io::SealState::Valid));
  // lookup3 as libhdf5 computes it (its exported H5_checksum_metadata), on a few lengths.
  std::string bytes;
  for (int i = 0; i < 50; ++i) bytes += static_cast<char>(i * 37 + 11);
  for (std::size_t n : {0u, 1u, 11u, 12u, 13u, 24u, 44u, 50u})
    BOOST_TEST(h5::lookup3(reinterpret_cast<const unsigned char*>(bytes.data()), n, 0) ==
               H5_checksum_metadata(bytes.data(), n, 0));
}
