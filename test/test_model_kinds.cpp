// Model kinds: `model.kind` is dispatched through the registry of src/train/model_kind_list.h (an
// unknown kind is one message listing them, a kind another command fits is refused naming it);
// what each kind builds is what the hand-written Model built before (checkpoint specs,
// descriptions and masks, compared with literals).
// ctest: labels=unit timeout=60
#define BOOST_TEST_MODULE model_kinds
#include <boost/test/unit_test.hpp>

#include <string>

#include "app/fit.h"
#include "cvnode/activation.h"
#include "cvnode/cvnode.h"
#include "cvnode/parameter_transform.h"
#include "cvnode/rank_backend.h"
#include "cvnode/trace_estimator.h"

using namespace cvnode;

namespace {

std::string message_of(void (*f)()) {
  try {
    f();
  } catch (const OptionsError& e) {
    return e.what();
  }
  return "(no OptionsError)";
}

ModelOptions small() {
  ModelOptions o;
  o.hidden = {8};
  return o;
}

ModelOptions decay_with_network() {
  ModelOptions o = small();
  o.physics.kind = "linear_decay";
  o.physics.transform = "log";
  o.physics.network = true;
  return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_kinds_are_listed_and_an_unknown_one_is_named) {
  BOOST_TEST(model_kinds() == (std::vector<std::string>{"neural_ode", "hybrid", "latent_ode", "rnn_baseline"}));
  BOOST_TEST(model_kind_command("neural_ode") == "fit");
  BOOST_TEST(model_kind_command("latent_ode") == "latent train");
  ModelOptions o = small();
  o.kind = "resnet";
  BOOST_TEST(o.validate() == "model.kind = \"resnet\" (expected neural_ode, hybrid, latent_ode or rnn_baseline)");
  BOOST_TEST(message_of([] { (void)model_kind_command("resnet"); }) ==
             "unknown model kind 'resnet' (expected neural_ode, hybrid, latent_ode or rnn_baseline)");
  BOOST_TEST(message_of([] {
               ModelOptions l = small();
               l.kind = "latent_ode";
               Model m(l, 2);
             }) == "model.kind = \"latent_ode\" is fitted by `cvnode latent train`, not as a Model (`cvnode fit`)");
  BOOST_TEST(message_of([] {
               ModelOptions h = small();
               h.kind = "hybrid";
               Model m(h, 2);
             }) == "model.kind = \"hybrid\" needs a physics term or network: set physics.kind or physics.network = true");
}

// The literals are the specs and descriptions the hand-written Model gave (checked on the tree
// before the registry): checkpoints written before it must load unchanged.
BOOST_AUTO_TEST_CASE(each_kind_builds_what_the_hand_written_model_built) {
  const Model plain(small(), 2);
  BOOST_TEST(model_spec(plain) ==
             "{\"activation\":\"tanh\",\"augment\":0,\"bias\":true,\"initial_state\":\"first_observation\","
             "\"layers\":[2,8,2],\"network_params\":42,\"observed\":2,\"time_input\":false,\"type\":\"mlp\"}");
  BOOST_TEST(plain.describe() ==
             "mlp 2-8-2 tanh, 42 parameters, augment 0, time_input false, bias true, z0 first_observation");
  const Model hybrid(decay_with_network(), 2);
  BOOST_TEST(model_spec(hybrid) ==
             "{\"activation\":\"tanh\",\"augment\":0,\"bias\":true,\"initial_state\":\"first_observation\","
             "\"layers\":[2,8,2],\"network_params\":44,\"observed\":2,\"physics\":{\"input_scale\":[],"
             "\"inputs\":[],\"kind\":\"linear_decay\",\"lower\":0.0,\"output_mask\":[],\"output_matrix\":[],"
             "\"outputs\":[],\"physics_params\":2,\"reactions\":[],\"size\":0,\"species\":[],\"transform\":\"log\","
             "\"upper\":0.0},\"time_input\":false,\"type\":\"hybrid\"}");
  BOOST_TEST(hybrid.describe() ==
             "hybrid: physics linear_decay (2 parameters, transform log) + network 2-8-2 tanh, 42 parameters, "
             "augment 0, time_input false, bias true, z0 first_observation");
  // Physics and network: physical parameters and biases without weight decay; bias = false
  // freezes the biases only.
  const Vector d = hybrid.decay_mask();
  BOOST_TEST(d.size() == 44);
  BOOST_TEST(d.head(2).sum() == 0.0);
  BOOST_TEST(d.sum() == 32.0);  // the 16 + 16 weights of 2-8-2
  ModelOptions nb = decay_with_network();
  nb.init = Init::Glorot;
  nb.bias = false;
  const Model frozen(nb, 2);
  const Vector t = frozen.trainable_mask();
  BOOST_TEST(t.sum() == 34.0);  // 2 physical + 32 weights
  const Vector theta = frozen.initial_parameters();
  BOOST_TEST((theta.array() * (1 - t.array())).abs().sum() == 0.0);
  // A physics-only model describes itself without the network's options.
  ModelOptions po = small();
  po.physics.kind = "linear_decay";
  const Model physics_only(po, 2);
  BOOST_TEST(physics_only.describe() == "hybrid: physics linear_decay (2 parameters, transform identity)");
  BOOST_TEST(physics_only.decay_mask().sum() == 0.0);
}
