// Checkpoints: exact round trip, version and model checks, and atomicity under SIGKILL.
// ctest: labels=unit,sanitize timeout=180
#define BOOST_TEST_MODULE data_checkpoint
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "cvnode/checkpoint.h"
#include "cvnode/errors.h"
#include "data/hdf5_raii.h"
#include "test_util.h"

using namespace cvnode;

namespace {

std::string temp_dir() {
  static const std::string dir = cvnode::test::make_temp_dir("data_checkpoint");
  return dir;
}

// A checkpoint whose every field is a function of `step`, so a reader can tell whether what it
// got is internally consistent.
Checkpoint make(std::int64_t step, int params = 5000) {
  Checkpoint c;
  c.model_spec = R"({"type": "mlp", "layers": [2, 64, 64, 2], "activation": "tanh"})";
  c.parameters = Vector::LinSpaced(params, 0, 1).array() + static_cast<double>(step);
  c.optimizer_vectors["m"] = c.parameters * 0.5;
  c.optimizer_vectors["v"] = c.parameters.array().square();
  c.optimizer_scalars["lr"] = 1e-3;
  c.optimizer_scalars["t"] = static_cast<double>(step);
  c.epoch = step / 10;
  c.step = step;
  c.rng_state = {0xDEADBEEFCAFEF00DULL, static_cast<std::uint64_t>(step), ~0ULL};
  c.config = "[train]\nepochs = 100\nseed = " + std::to_string(step) + "\n";
  c.normalization.mean = (Vector(2) << 1.5, -2.0).finished();
  c.normalization.std = (Vector(2) << 0.5, 3.0).finished();
  for (std::int64_t k = 0; k <= step % 50; ++k) c.metrics["train_loss"].push_back(1.0 / (k + 1));
  c.metrics["val_loss"] = {0.7, 0.5};
  c.metrics["empty"] = {};
  return c;
}

bool consistent(const Checkpoint& c) {
  const Checkpoint e = make(c.step, static_cast<int>(c.parameters.size()));
  return c.parameters == e.parameters && c.optimizer_vectors == e.optimizer_vectors &&
         c.optimizer_scalars == e.optimizer_scalars && c.epoch == e.epoch && c.rng_state == e.rng_state &&
         c.config == e.config && c.metrics == e.metrics && c.model_spec == e.model_spec &&
         c.normalization.mean == e.normalization.mean && c.normalization.std == e.normalization.std;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    BOOST_ERROR("no DataError");
  } catch (const DataError& e) {
    const std::string msg = e.what();
    for (const auto& s : fragments) BOOST_CHECK_MESSAGE(msg.find(s) != std::string::npos, "'" << s << "' not in: " << msg);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_is_exact) {
  const std::string path = temp_dir() + "/a.h5";
  const Checkpoint c = make(1234);
  c.write(path);
  const Checkpoint r = Checkpoint::read(path);
  BOOST_CHECK(consistent(r));
  BOOST_CHECK_EQUAL(r.step, 1234);
  BOOST_CHECK_EQUAL(r.epoch, 123);
  BOOST_CHECK_EQUAL(r.rng_state[0], 0xDEADBEEFCAFEF00DULL);
  BOOST_CHECK_EQUAL(r.rng_state[2], ~0ULL);
  BOOST_CHECK_EQUAL(r.metrics.at("train_loss").size(), 1234u % 50 + 1);
  BOOST_CHECK(r.metrics.at("empty").empty());
  BOOST_CHECK_EQUAL(r.optimizer_scalars.at("lr"), 1e-3);
  BOOST_CHECK_EQUAL(r.config, c.config);
  // An empty checkpoint round-trips too.
  Checkpoint empty;
  empty.write(path);
  const Checkpoint e = Checkpoint::read(path);
  BOOST_CHECK_EQUAL(e.parameters.size(), 0);
  BOOST_CHECK(e.model_spec.empty() && e.metrics.empty() && e.rng_state.empty());
  // No temporary files are left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(temp_dir())) files += entry.path().string().find(".tmp.") != std::string::npos;
  BOOST_CHECK_EQUAL(files, 0);
}

BOOST_AUTO_TEST_CASE(model_specification_must_match) {
  const std::string path = temp_dir() + "/spec.h5";
  make(1).write(path);
  // Same JSON with other spacing and key order: accepted.
  BOOST_CHECK(consistent(Checkpoint::read(path, R"({"layers":[2,64,64,2],"activation":"tanh","type":"mlp"})")));
  expect_error([&] { Checkpoint::read(path, R"({"type": "mlp", "layers": [2, 32, 2], "activation": "tanh"})"); },
               {path, "dataset 'model_spec'", "model specification", "differs from the expected", "[2, 32, 2]"});
}

BOOST_AUTO_TEST_CASE(format_and_version_are_checked) {
  auto raw = [](const std::string& name, const std::string& format, long version) {
    const std::string path = temp_dir() + "/" + name + ".h5";
    h5::File f = h5::File::create_checked(path, 0);
    f.write_string_attribute("format", format);
    f.write_int_attribute("format_version", version);
    f.close();
    return path;
  };
  std::string p = raw("newer", "cvnode-checkpoint", kCheckpointFormatVersion + 1);
  expect_error([&] { Checkpoint::read(p); }, {p, "attribute 'format_version'",
                                             std::to_string(kCheckpointFormatVersion + 1) +
                                                 " is newer than this cvnode reads (" +
                                                 std::to_string(kCheckpointFormatVersion) + ")"});
  p = raw("dataset", "cvnode-dataset", 1);
  expect_error([&] { Checkpoint::read(p); }, {p, "this is a cvnode dataset, not a checkpoint"});
  p = raw("other", "someone-elses-format", 1);
  expect_error([&] { Checkpoint::read(p); }, {p, "attribute 'format'", "'someone-elses-format', expected 'cvnode-checkpoint'"});
  p = raw("incomplete", "cvnode-checkpoint", 1);
  expect_error([&] { Checkpoint::read(p); }, {p, "missing"});
}

// A child writes checkpoints as fast as it can; the parent kills it with SIGKILL at a random
// moment. The file must then hold one complete, consistent checkpoint (the last committed one).
BOOST_AUTO_TEST_CASE(sigkill_during_writes_leaves_a_readable_checkpoint) {
  const std::string path = temp_dir() + "/killed.h5";
  make(0, 100000).write(path);
  std::uint64_t seed = 2024;
  std::int64_t last_seen = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t child = fork();
    BOOST_REQUIRE(child >= 0);
    if (child == 0) {
      for (std::int64_t step = last_seen + 1;; ++step) make(step, 100000).write(path);
      _exit(0);
    }
    // Wait until the child has committed at least one new checkpoint (on a loaded machine a
    // fixed delay may end before its first write), then kill it a random moment later, which
    // lands mid-write most of the time.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (Checkpoint::read(path).step <= last_seen && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    std::this_thread::sleep_for(std::chrono::milliseconds((seed >> 33) % 40));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    BOOST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    const Checkpoint c = Checkpoint::read(path);
    BOOST_CHECK(consistent(c));
    BOOST_CHECK(c.step > last_seen);
    BOOST_TEST_MESSAGE("round " << round << ": step " << c.step);
    last_seen = c.step;
  }
  BOOST_CHECK(last_seen > 0);  // the children did commit checkpoints
  // A killed writer may leave its temporary file (never the destination) behind.
  for (const auto& entry : std::filesystem::directory_iterator(temp_dir()))
    if (entry.path().string().find(".tmp.") != std::string::npos) std::filesystem::remove(entry.path());
}
