// The configuration examples of the docs are what the code accepts: docs/hybrid.md's fit
// configuration of a hybrid model (issue 18: its [model.physics] / [model.network] example was
// rejected with "unknown key") parses, validates, and builds the hybrid it describes.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE docs_examples
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include "app/config.h"
#include "cvnode/model.h"

using namespace cvnode;

namespace {

// The TOML code blocks of a Markdown file, in order.
std::vector<std::string> toml_blocks(const std::string& path) {
  std::ifstream f(path);
  BOOST_TEST_REQUIRE(f.good(), path);
  std::vector<std::string> blocks;
  std::string line, block;
  bool in = false;
  while (std::getline(f, line)) {
    if (!in && line == "```toml") {
      in = true;
      block.clear();
    } else if (in && line == "```") {
      in = false;
      blocks.push_back(block);
    } else if (in) {
      block += line + "\n";
    }
  }
  return blocks;
}

}  // namespace

BOOST_AUTO_TEST_CASE(hybrid_md_fit_configuration_parses_and_builds) {
  const auto blocks = toml_blocks(std::string(CVNODE_SOURCE_DIR) + "/docs/hybrid.md");
  BOOST_TEST_REQUIRE(!blocks.empty(), "docs/hybrid.md has no ```toml block");
  for (const auto& text : blocks) {
    Config c;
    try {
      c = Config::parse(text, "docs/hybrid.md");
    } catch (const std::exception& e) {
      BOOST_FAIL("docs/hybrid.md's example is rejected: " << e.what());
    }
    BOOST_TEST(c.model.physics.kind == "mass_action");
    BOOST_TEST(c.model.physics.network);
    // Three species observed: the hybrid of the example, physics parameters and network.
    const Model m(c.model, 3);
    BOOST_TEST_REQUIRE(m.hybrid() != nullptr);
    BOOST_TEST(m.hybrid()->physics_size() == 3);
    BOOST_TEST(m.network_params() == 3 + (2 * 16 + 16) + (16 * 2 + 2));
  }
}
