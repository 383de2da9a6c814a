// model.kind = "neural_ode": an Mlp on the state (observed channels + augment) and the inputs.
#include <memory>

#include "train/model_kind.h"

namespace cvnode {

namespace {
class NeuralOde final : public detail::ModelKind {
 public:
  NeuralOde(const ModelOptions& o, int state, int inputs)
      : o_(o), net_(std::make_shared<Mlp>(detail::network_spec(o, state, state, inputs))) {}
  std::shared_ptr<const Dynamics> dynamics() const override { return net_; }
  Vector initial_parameters() const override { return net_->initial_parameters(o_.init, o_.seed); }
  Vector bias_mask() const override { return detail::network_bias_mask(*net_, 0, net_->param_size()); }
  Vector decay_mask() const override { return Vector::Ones(net_->param_size()) - bias_mask(); }
  std::string describe() const override { return "mlp " + detail::describe_network(*net_); }
  void spec(nlohmann::json& j) const override {
    j["type"] = "mlp";
    j["layers"] = net_->spec().layers;
  }
  const Mlp* network() const override { return net_.get(); }

 private:
  ModelOptions o_;
  std::shared_ptr<const Mlp> net_;
};
}  // namespace

std::unique_ptr<detail::ModelKind> make_neural_ode_model(const ModelOptions& options, int state, int inputs) {
  return std::make_unique<NeuralOde>(options, state, inputs);
}

}  // namespace cvnode
