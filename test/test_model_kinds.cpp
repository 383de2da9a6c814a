// Model kinds and the name tables: `model.kind` is dispatched through the registry of
// src/train/model_kind_list.h (an unknown kind is one message listing them, a kind another command
// fits is refused naming it); what each kind builds is what the hand-written Model built before
// (checkpoint specs, descriptions and masks, compared with literals); every enum's spellings
// round-trip through its one table, aliases parse without being listed, and an unknown name is
// one OptionsError listing the choices.
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

BOOST_AUTO_TEST_CASE(every_enum_round_trips_through_its_one_table) {
  for (Activation a : {Activation::Identity, Activation::Tanh, Activation::Relu, Activation::Softplus,
                       Activation::Sigmoid, Activation::Silu, Activation::Elu})
    BOOST_TEST((parse_activation(activation_name(a)) == a));
  for (Init i : {Init::Glorot, Init::He, Init::PyTorch, Init::SmallOutput}) BOOST_TEST((parse_init(init_name(i)) == i));
  for (InitialState s : {InitialState::FirstObservation, InitialState::Given, InitialState::Learned, InitialState::Zero})
    BOOST_TEST((parse_initial_state(initial_state_name(s)) == s));
  for (Readout r : {Readout::Identity, Readout::Linear}) BOOST_TEST((parse_readout(readout_name(r)) == r));
  for (OptimizerKind k : {OptimizerKind::Adam, OptimizerKind::AdamW, OptimizerKind::Sgd})
    BOOST_TEST((parse_optimizer(optimizer_name(k)) == k));
  for (ScheduleKind k : {ScheduleKind::Constant, ScheduleKind::Step, ScheduleKind::Cosine, ScheduleKind::Plateau})
    BOOST_TEST((parse_schedule(schedule_name(k)) == k));
  for (Reduction r : {Reduction::Reproducible, Reduction::Fast}) BOOST_TEST((parse_reduction(reduction_name(r)) == r));
  for (Balance b : {Balance::Dynamic, Balance::Static}) BOOST_TEST((parse_balance(balance_name(b)) == b));
  for (TraceEstimator t : {TraceEstimator::Exact, TraceEstimator::Hutchinson})
    BOOST_TEST((parse_trace_estimator(trace_estimator_name(t)) == t));
  for (ProbeNoise n : {ProbeNoise::Rademacher, ProbeNoise::Gaussian})
    BOOST_TEST((parse_probe_noise(probe_noise_name(n)) == n));
  // Aliases parse to their value and print as its name.
  BOOST_TEST((parse_activation("swish") == Activation::Silu));
  BOOST_TEST((parse_activation("linear") == Activation::Identity));
  BOOST_TEST((parse_param_transform("none") == ParamTransform::Identity));
}

BOOST_AUTO_TEST_CASE(an_unknown_name_is_one_options_error_listing_the_choices) {
  BOOST_TEST(message_of([] { (void)parse_activation("gelu"); }) ==
             "unknown activation 'gelu' (expected identity, tanh, relu, softplus, sigmoid, silu or elu)");
  BOOST_TEST(message_of([] { (void)parse_reduction("slow"); }) == "unknown reduction 'slow' (expected reproducible or fast)");
  BOOST_TEST(message_of([] { (void)parse_trace_estimator("exactly"); }) ==
             "unknown trace estimator 'exactly' (expected exact or hutchinson)");
  BOOST_TEST(message_of([] { (void)parse_param_transform("logit"); }) ==
             "unknown parameter transform 'logit' (expected identity, log, bounded or log_bounded)");
  BOOST_TEST(message_of([] { (void)parse_init("zeros"); }) ==
             "unknown init 'zeros' (expected glorot, he, pytorch or small_output)");
}
