// The registry of model kinds: src/train/model_kind_list.h.
#include "train/model_kind.h"

#include <sstream>

#include "core/names.h"
#include "cvnode/errors.h"

namespace cvnode {

#define CVNODE_MODEL_KIND(name, id) \
  std::unique_ptr<detail::ModelKind> make_##id##_model(const ModelOptions&, int, int);
#define CVNODE_MODEL_KIND_ELSEWHERE(name, command)
#include "train/model_kind_list.h"
#undef CVNODE_MODEL_KIND
#undef CVNODE_MODEL_KIND_ELSEWHERE

namespace {
struct KindEntry {
  detail::ModelKindFactory make;  // null: fitted by `command`
  const char* command;
};

const detail::Registry<KindEntry>& registry() {
  static const detail::Registry<KindEntry> r("model kind", {
#define CVNODE_MODEL_KIND(name, id) {name, {&make_##id##_model, "fit"}},
#define CVNODE_MODEL_KIND_ELSEWHERE(name, command) {name, {nullptr, command}},
#include "train/model_kind_list.h"
#undef CVNODE_MODEL_KIND
#undef CVNODE_MODEL_KIND_ELSEWHERE
  });
  return r;
}
}  // namespace

std::vector<std::string> model_kinds() { return registry().names(); }

std::string model_kind_command(const std::string& kind) { return registry().at(kind).command; }

detail::ModelKindFactory detail::model_kind_factory(const std::string& kind) { return registry().at(kind).make; }

MlpSpec detail::network_spec(const ModelOptions& o, int in, int out, int inputs) {
  MlpSpec m;
  m.layers.push_back(in);
  for (int h : o.hidden) m.layers.push_back(h);
  m.layers.push_back(out);
  m.activation = o.activation;
  m.time_input = o.time_input;
  m.inputs = inputs;
  return m;
}

std::string detail::describe_network(const Mlp& net) {
  std::ostringstream o;
  const auto& layers = net.spec().layers;
  for (std::size_t i = 0; i < layers.size(); ++i) o << (i ? "-" : "") << layers[i];
  o << " " << activation_name(net.spec().activation) << ", " << net.param_size() << " parameters";
  return o.str();
}

Vector detail::network_bias_mask(const Mlp& net, int offset, int size) {
  Vector m = Vector::Zero(size);
  const auto& layers = net.spec().layers;
  for (std::size_t l = 0; l + 1 < layers.size(); ++l)
    m.segment(offset + net.bias_offset(static_cast<int>(l)), layers[l + 1]).setOnes();
  return m;
}

}  // namespace cvnode
