// cvnode.Dynamics and the models: Mlp, the known physics, LinearDecay, Hybrid and hybrid_model()
// (build_hybrid). Dynamics are shared with the solvers through std::shared_ptr, so a Solver keeps
// its model alive.
#include <pybind11/stl.h>

#include "convert.h"
#include "cvnode/hybrid.h"
#include "cvnode/hybrid_model.h"
#include "cvnode/linear_decay.h"
#include "cvnode/mlp.h"
#include "cvnode/model.h"
#include "cvnode/physics.h"
#include "python_dynamics.h"

namespace cvnode::python {

namespace {

struct Point {
  double t;
  Vector z, theta;
};

Point point(const Dynamics& d, double t, py::handle z, py::handle theta) {
  return {t, to_vector(z, "z", Kind::Config, d.state_size()), to_vector(theta, "theta", Kind::Config, d.param_size())};
}

// Runs one evaluation of `d` for the Python user; a Python dynamics' stored error is raised.
template <class F>
void evaluate(const Dynamics& d, F&& f) {
  PythonErrors errors(d);
  errors.clear();
  f();
  errors.raise_if_any();
}

std::vector<int> optional_ints(py::handle obj, const char* what) {
  return obj.is_none() ? std::vector<int>{} : to_ints(obj, what, Kind::Config);
}
Vector optional_vector(py::handle obj, const char* what) {
  return obj.is_none() ? Vector() : to_vector(obj, what, Kind::Config);
}

HybridCoupling coupling(py::handle inputs, py::handle outputs, py::handle output_mask, py::handle input_scale,
                        py::handle output_matrix) {
  HybridCoupling c;
  c.input_indices = optional_ints(inputs, "inputs");
  c.output_indices = optional_ints(outputs, "outputs");
  c.output_mask = optional_vector(output_mask, "output_mask");
  c.input_scale = optional_vector(input_scale, "input_scale");
  if (!output_matrix.is_none()) c.output_matrix = to_matrix(output_matrix, "output_matrix", Kind::Config);
  return c;
}

MlpSpec mlp_spec(py::handle layers, const std::string& activation, bool time_input, py::handle k_diag) {
  MlpSpec s;
  s.layers = to_ints(layers, "layers", Kind::Config);
  s.activation = parse_activation(activation);
  s.time_input = time_input;
  s.k_diag = optional_vector(k_diag, "k_diag");
  return s;
}

template <class T>
void bind_physics(py::module_& m, const char* name, const char* doc) {
  py::class_<T, Dynamics, std::shared_ptr<T>>(m, name, doc)
      .def(py::init<>())
      .def_static("default_parameters", [] { return to_numpy(T::default_parameters()); });
}

}  // namespace

void bind_models(py::module_& m) {
  py::class_<Dynamics, std::shared_ptr<Dynamics>>(
      m, "Dynamics",
      "dz/dt = f(t, z; theta) with its derivatives: the interface every model implements. The evaluation "
      "methods here are for checks and plots; solvers call the C++ side directly.")
      .def_property_readonly("state_size", &Dynamics::state_size)
      .def_property_readonly("param_size", &Dynamics::param_size)
      .def_property_readonly("smooth", &Dynamics::smooth)
      .def(
          "rhs",
          [](const Dynamics& d, double t, py::handle z, py::handle theta) {
            Point p = point(d, t, z, theta);
            Vector f(d.state_size()), work(d.workspace_size());
            evaluate(d, [&] { d.rhs(p.t, p.z, p.theta, f, work); });
            return to_numpy(f);
          },
          py::arg("t"), py::arg("z"), py::arg("theta"), "f(t, z; theta)")
      .def(
          "vjp",
          [](const Dynamics& d, double t, py::handle z, py::handle theta, py::handle a) {
            Point p = point(d, t, z, theta);
            const Vector av = to_vector(a, "a", Kind::Config, d.state_size());
            Vector dz(d.state_size()), dth(d.param_size()), work(d.workspace_size());
            evaluate(d, [&] { d.vjp(p.t, p.z, p.theta, av, dz, dth, work); });
            return py::make_tuple(to_numpy(dz), to_numpy(dth));
          },
          py::arg("t"), py::arg("z"), py::arg("theta"), py::arg("a"), "(a^T df/dz, a^T df/dtheta)")
      .def(
          "jacobian",
          [](const Dynamics& d, double t, py::handle z, py::handle theta) {
            Point p = point(d, t, z, theta);
            Matrix J(d.state_size(), d.state_size());
            Vector work(d.workspace_size());
            evaluate(d, [&] { d.jacobian(p.t, p.z, p.theta, J, work); });
            return to_numpy(J);
          },
          py::arg("t"), py::arg("z"), py::arg("theta"), "df/dz")
      .def(
          "jvp",
          [](const Dynamics& d, double t, py::handle z, py::handle theta, py::handle v) {
            Point p = point(d, t, z, theta);
            const Vector vv = to_vector(v, "v", Kind::Config, d.state_size());
            Vector Jv(d.state_size()), work(d.workspace_size());
            evaluate(d, [&] { d.jvp(p.t, p.z, p.theta, vv, Jv, work); });
            return to_numpy(Jv);
          },
          py::arg("t"), py::arg("z"), py::arg("theta"), py::arg("v"), "(df/dz) v")
      .def("__repr__", [](const Dynamics& d) {
        return "<cvnode." + std::string(py::str(py::cast(&d).get_type().attr("__name__"))) + ": state " +
               std::to_string(d.state_size()) + ", " + std::to_string(d.param_size()) + " parameters>";
      });

  py::class_<Mlp, Dynamics, std::shared_ptr<Mlp>>(
      m, "Mlp",
      "f(t, z) = W_L s(... s(W_1 [z; t] + b_1) ...) + b_L - k_diag * z. theta = [W_1 row-major, b_1, W_2, b_2, "
      "...], the layout of torch's state_dict.")
      .def(py::init([](py::handle layers, const std::string& activation, bool time_input, py::handle k_diag) {
             return std::make_shared<Mlp>(mlp_spec(layers, activation, time_input, k_diag));
           }),
           py::arg("layers"), py::arg("activation") = "tanh", py::arg("time_input") = false,
           py::arg("k_diag") = py::none())
      .def(
          "initial_parameters",
          [](const Mlp& f, const std::string& init, std::uint64_t seed) {
            return to_numpy(f.initial_parameters(parse_init(init), seed));
          },
          py::arg("init") = "glorot", py::arg("seed") = 1,
          "Initial theta: glorot, he, pytorch or small_output (glorot with the last layer x0.1); deterministic per seed.")
      .def_property_readonly("layers", [](const Mlp& f) { return f.spec().layers; })
      .def_property_readonly("activation", [](const Mlp& f) { return activation_name(f.spec().activation); })
      .def_property_readonly("time_input", [](const Mlp& f) { return f.spec().time_input; })
      .def_property_readonly("k_diag", [](const Mlp& f) { return to_numpy(f.spec().k_diag); })
      .def("weight_offset", &Mlp::weight_offset, py::arg("layer"))
      .def("bias_offset", &Mlp::bias_offset, py::arg("layer"));

  bind_physics<CubicSpiral>(m, "CubicSpiral", "dz/dt = A^T z^3 (B1's spiral); theta = A row-major.");
  bind_physics<LotkaVolterra>(m, "LotkaVolterra", "Predator-prey; theta = (alpha, beta, delta, gamma).");
  bind_physics<DampedOscillator>(m, "DampedOscillator", "x'' + 2 zeta omega x' + omega^2 x = 0; theta = (omega, zeta).");
  bind_physics<Robertson>(m, "Robertson", "Robertson's stiff kinetics; theta = (k1, k2, k3). Needs BDF.");

  py::class_<LinearDecay, Dynamics, std::shared_ptr<LinearDecay>>(
      m, "LinearDecay", "f = -k * z: learnable rates (LinearDecay(n), theta = k) or fixed ones (LinearDecay(rates)).")
      .def(py::init([](py::handle n_or_rates) {
             if (py::isinstance<py::int_>(n_or_rates)) return std::make_shared<LinearDecay>(n_or_rates.cast<int>());
             return std::make_shared<LinearDecay>(to_vector(n_or_rates, "LinearDecay: rates", Kind::Config));
           }),
           py::arg("n_or_rates"));

  py::class_<Hybrid, Dynamics, std::shared_ptr<Hybrid>>(
      m, "Hybrid",
      "f = g(t, z; p) + S N(t, D z[inputs]; theta) (docs/hybrid.md): known physics plus a network; "
      "theta_hybrid = [p, theta].")
      .def(py::init([](std::shared_ptr<Dynamics> physics, std::shared_ptr<Dynamics> network, py::handle inputs,
                       py::handle outputs, py::handle output_mask, py::handle input_scale, py::handle output_matrix) {
             return std::make_shared<Hybrid>(physics, network,
                                             coupling(inputs, outputs, output_mask, input_scale, output_matrix));
           }),
           py::arg("physics") = nullptr, py::arg("network") = nullptr, py::arg("inputs") = py::none(),
           py::arg("outputs") = py::none(), py::arg("output_mask") = py::none(), py::arg("input_scale") = py::none(),
           py::arg("output_matrix") = py::none())
      .def_property_readonly("physics_param_size", &Hybrid::physics_param_size)
      .def_property_readonly("network_param_size", &Hybrid::network_param_size);

  py::class_<HybridModel>(m, "HybridModel",
                          "A hybrid model built from a description (hybrid_model()): dynamics, initial parameters "
                          "[q, theta] and the map to physical parameters p = T(q).")
      .def_property_readonly("dynamics",
                             [](const HybridModel& h) { return std::const_pointer_cast<Hybrid>(h.dynamics); })
      .def_property_readonly("initial", [](const HybridModel& h) { return to_numpy(h.initial); })
      .def_property_readonly("physics_size", &HybridModel::physics_size)
      .def(
          "physical",
          [](const HybridModel& h, py::handle params) {
            return to_numpy(h.physical(to_vector(params, "params", Kind::Config, h.dynamics->param_size())));
          },
          py::arg("params"), "The physical parameters p = T(q) of a full parameter vector.");

  m.def(
      "hybrid_model",
      [](const std::string& kind, py::handle species, py::handle reactions, int size, py::handle fixed_rates,
         const std::string& transform, double lower, double upper, py::handle initial, py::handle network,
         const std::string& activation, bool time_input, py::handle inputs, py::handle outputs,
         py::handle output_mask, py::handle input_scale, py::handle output_matrix, const std::string& init,
         std::uint64_t seed) {
        HybridModelSpec s;
        s.physics.kind = kind;
        if (!species.is_none()) s.physics.species = to_strings(species, "species", Kind::Config);
        if (!reactions.is_none()) s.physics.reactions = to_strings(reactions, "reactions", Kind::Config);
        s.physics.size = size;
        s.physics.fixed_rates = optional_vector(fixed_rates, "fixed_rates");
        s.physics.transform = transform;
        s.physics.lower = lower;
        s.physics.upper = upper;
        s.physics.initial = optional_vector(initial, "initial");
        if (!network.is_none()) s.network = mlp_spec(network, activation, time_input, py::none());
        s.coupling = coupling(inputs, outputs, output_mask, input_scale, output_matrix);
        s.network_init = parse_init(init);
        s.seed = seed;
        return build_hybrid(s);
      },
      py::kw_only(), py::arg("kind") = "none", py::arg("species") = py::none(), py::arg("reactions") = py::none(),
      py::arg("size") = 0, py::arg("fixed_rates") = py::none(), py::arg("transform") = "identity",
      py::arg("lower") = 0.0, py::arg("upper") = 0.0, py::arg("initial") = py::none(),
      py::arg("network") = py::none(), py::arg("activation") = "tanh", py::arg("time_input") = false,
      py::arg("inputs") = py::none(), py::arg("outputs") = py::none(), py::arg("output_mask") = py::none(),
      py::arg("input_scale") = py::none(), py::arg("output_matrix") = py::none(),
      py::arg("init") = "small_output", py::arg("seed") = 1,
      "A hybrid model (docs/hybrid.md): physics kind none, linear_decay, mass_action (species, reactions) or "
      "robertson, with parameter transform identity, log, bounded or log_bounded (lower, upper); network = the "
      "layer widths of an added Mlp term (its first width = the number of inputs).");
}

}  // namespace cvnode::python
