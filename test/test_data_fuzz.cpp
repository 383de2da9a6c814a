// Truncated and corrupted files: every read ends in a clean DataError or, where the damage hit
// bytes nothing reads, in the original content; none crashes.
// ctest: labels=unit,sanitize timeout=120
#define BOOST_TEST_MODULE data_fuzz
#include <boost/test/unit_test.hpp>

#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "cvnode/checkpoint.h"
#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "cvnode/generators.h"
#include "test_util.h"

using namespace cvnode;

namespace {

std::string temp_dir() {
  static const std::string dir = cvnode::test::make_temp_dir("data_fuzz");
  return dir;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

bool same(const Dataset& a, const Dataset& b) {
  if (a.size() != b.size() || a.channel_names() != b.channel_names() || a.channel_units() != b.channel_units() ||
      a.provenance() != b.provenance())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Series x = a.series(i), y = b.series(i);
    if (x.id != y.id || x.times != y.times || x.mask != y.mask || x.initial_state != y.initial_state) return false;
    for (Eigen::Index e = 0; e < x.values.size(); ++e)
      if (x.mask(e) && x.values(e) != y.values(e)) return false;
  }
  return true;
}

// A small deterministic generator for the damage positions.
struct Lcg {
  std::uint64_t s;
  std::uint64_t next() { s = s * 6364136223846793005ULL + 1442695040888963407ULL; return s >> 17; }
};

struct Tally {
  int errors = 0, intact = 0, total = 0;
};

// HDF5 objects (files, datasets, groups, types, attributes) open in this process. libhdf5 closes
// what is left open at exit, so LeakSanitizer never sees a handle cvnode forgot: this count does.
ssize_t open_hdf5_objects() { return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL); }

// Runs `read` on the damaged file: a DataError is counted, an intact result is counted, anything
// else (another exception, a different result) fails the test. A crash would end the test. Every
// path, the failing ones included, closes every HDF5 object it opened: what the sanitizer stage's
// leak suppressions (libhdf5's own allocations, test/sanitizer/lsan.supp) leave to this check.
template <class Read>
void attempt(Tally& t, Read read, const std::string& what) {
  ++t.total;
  try {
    if (read()) ++t.intact;
    else BOOST_ERROR(what << ": read succeeded with different content");
  } catch (const DataError& e) {
    ++t.errors;
    BOOST_CHECK_MESSAGE(std::string(e.what()).find(temp_dir()) == 0, what << ": message does not name the file: " << e.what());
  } catch (const std::exception& e) {
    BOOST_ERROR(what << ": not a DataError: " << e.what());
  }
  const ssize_t open = open_hdf5_objects();
  BOOST_CHECK_MESSAGE(open == 0, what << ": " << open << " HDF5 objects left open");
}

}  // namespace

BOOST_AUTO_TEST_CASE(truncated_and_corrupted_datasets) {
  GeneratorOptions o;
  o.series = 30;
  o.observations = 20;
  o.missing = 0.1;
  const Dataset original = generate(o);
  const std::string good = temp_dir() + "/good.h5", bad = temp_dir() + "/bad.h5";
  original.write(good);
  const std::string bytes = slurp(good);
  BOOST_TEST_MESSAGE("file size " << bytes.size());

  // Whole reads (seal verified) and range reads (only HDF5's own checksums).
  auto whole = [&] { return same(Dataset::read(bad), original); };
  auto range = [&] {
    std::vector<std::size_t> idx;
    for (std::size_t i = 10; i < 20; ++i) idx.push_back(i);
    return same(Dataset::read_range(bad, 10, 10), original.subset(idx));
  };
  auto unverified = [&] { return same(Dataset::read(bad, false), original); };

  Tally cut;
  for (std::size_t len = 0; len < bytes.size(); len += std::max<std::size_t>(1, bytes.size() / 150)) {
    spit(bad, bytes.substr(0, len));
    attempt(cut, whole, "truncated to " + std::to_string(len));
    attempt(cut, range, "truncated to " + std::to_string(len) + " (range)");
  }
  BOOST_CHECK_EQUAL(cut.intact, 0);  // every truncation is detected
  BOOST_TEST_MESSAGE("truncations: " << cut.total << " reads, " << cut.errors << " DataErrors");

  Tally flip, flip_range;
  Lcg rng{12345};
  for (int trial = 0; trial < 400; ++trial) {
    std::string damaged = bytes;
    const int hits = 1 + static_cast<int>(rng.next() % 4);
    for (int h = 0; h < hits; ++h) {
      const std::size_t pos = rng.next() % damaged.size();
      damaged[pos] = static_cast<char>(damaged[pos] ^ (1 + rng.next() % 255));
    }
    spit(bad, damaged);
    attempt(flip, whole, "corruption trial " + std::to_string(trial));
    attempt(flip_range, range, "corruption trial " + std::to_string(trial) + " (range)");
    attempt(flip_range, unverified, "corruption trial " + std::to_string(trial) + " (unverified)");
  }
  BOOST_TEST_MESSAGE("corruptions, whole reads: " << flip.total << " reads, " << flip.errors << " DataErrors, "
                     << flip.intact << " intact");
  BOOST_TEST_MESSAGE("corruptions, range and unverified reads: " << flip_range.total << " reads, "
                     << flip_range.errors << " DataErrors, " << flip_range.intact << " intact");
  // The seal catches everything but damage confined to its own magic bytes.
  BOOST_CHECK(flip.errors >= flip.total * 95 / 100);
}

BOOST_AUTO_TEST_CASE(truncated_and_corrupted_checkpoints) {
  Checkpoint c;
  c.model_spec = "{\"layers\": [2, 16, 2]}";
  c.parameters = Vector::LinSpaced(82, -1, 1);
  c.optimizer_vectors["m"] = Vector::Constant(82, 0.5);
  c.optimizer_scalars["lr"] = 1e-3;
  c.rng_state = {1, 2, 3};
  c.metrics["loss"] = {3, 2, 1};
  const std::string good = temp_dir() + "/ckpt.h5", bad = temp_dir() + "/ckpt_bad.h5";
  c.write(good);
  const std::string bytes = slurp(good);
  auto read = [&] {
    const Checkpoint r = Checkpoint::read(bad);
    return r.parameters == c.parameters && r.optimizer_vectors == c.optimizer_vectors && r.metrics == c.metrics &&
           r.rng_state == c.rng_state && r.model_spec == c.model_spec;
  };
  Tally t;
  for (std::size_t len = 0; len < bytes.size(); len += 97) {
    spit(bad, bytes.substr(0, len));
    attempt(t, read, "checkpoint truncated to " + std::to_string(len));
  }
  Lcg rng{99};
  for (int trial = 0; trial < 200; ++trial) {
    std::string damaged = bytes;
    const std::size_t pos = rng.next() % damaged.size();
    damaged[pos] = static_cast<char>(damaged[pos] ^ (1 + rng.next() % 255));
    spit(bad, damaged);
    attempt(t, read, "checkpoint corruption " + std::to_string(trial));
  }
  BOOST_CHECK(t.errors >= t.total * 95 / 100);
}
