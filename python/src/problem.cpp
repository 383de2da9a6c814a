#include "problem.h"

#include <cmath>

#include <pybind11/stl.h>

namespace cvnode::python {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

py::object mask_to_numpy(const Matrix& mask) {
  if (mask.size() == 0) return py::none();
  py::array_t<bool> a({mask.rows(), mask.cols()});
  auto w = a.mutable_unchecked<2>();
  for (Eigen::Index r = 0; r < mask.rows(); ++r)
    for (Eigen::Index c = 0; c < mask.cols(); ++c) w(r, c) = mask(r, c) != 0;
  return std::move(a);
}

std::vector<Event> events_arg(py::handle events) {
  std::vector<Event> out;
  if (events.is_none()) return out;
  try {
    for (py::handle h : events) {
      if (!py::isinstance<Event>(h))
        fail(Kind::Data, "Trajectory: events: expected cvnode.Event items, got " + std::string(py::str(h.get_type())));
      out.push_back(h.cast<Event>());
    }
  } catch (py::error_already_set&) {
    fail(Kind::Data, "Trajectory: events: expected a list of cvnode.Event");
  }
  return out;
}

Trajectory make_trajectory(py::handle t0, py::handle z0, py::handle times, py::handle values, py::handle mask,
                           py::handle t_end, py::handle events, py::handle controls, py::handle covariates) {
  Trajectory tr;
  tr.t0 = to_double(t0, "Trajectory: t0", Kind::Data);
  tr.z0 = to_vector(z0, "Trajectory: z0", Kind::Data);
  tr.times = to_vector(times, "Trajectory: times", Kind::Data);
  // Masked entries may be NaN; Trajectory::validate reports unmasked ones.
  tr.values = to_matrix(values, "Trajectory: values", Kind::Data, tr.times.size(), -1, true, true);
  if (!mask.is_none())
    tr.mask = to_matrix(mask, "Trajectory: mask", Kind::Data, tr.values.rows(), tr.values.cols(), false, true);
  if (!t_end.is_none()) tr.t_end = to_double(t_end, "Trajectory: t_end", Kind::Data);
  tr.events = events_arg(events);
  if (!controls.is_none()) {
    if (!py::isinstance<Controls>(controls))
      fail(Kind::Data, "Trajectory: controls: expected a cvnode.Controls, got " + std::string(py::str(controls.get_type())));
    tr.controls = controls.cast<Controls>();
  }
  if (!covariates.is_none()) tr.covariates = to_vector(covariates, "Trajectory: covariates", Kind::Data);
  if (tr.z0.size() == 0) fail(Kind::Data, "Trajectory: z0 is empty");
  // The channel count against the state is the loss's question, asked by the solve.
  if (std::string why = tr.validate(static_cast<int>(tr.z0.size())); !why.empty())
    fail(Kind::Data, "Trajectory: " + why);
  return tr;
}

}  // namespace

const std::vector<Trajectory>& batch_arg(py::handle obj, std::vector<Trajectory>& storage) {
  if (py::isinstance<Batch>(obj)) return obj.cast<const Batch&>().items;
  if (py::isinstance<Trajectory>(obj))
    fail(Kind::Data, "expected a list of Trajectory (or a cvnode.Batch), got one Trajectory");
  try {
    for (py::handle h : obj) {
      if (!py::isinstance<Trajectory>(h))
        fail(Kind::Data, "expected cvnode.Trajectory items, got " + std::string(py::str(h.get_type())));
      storage.push_back(h.cast<const Trajectory&>());
    }
  } catch (py::error_already_set&) {
    fail(Kind::Data, "expected a list of Trajectory (or a cvnode.Batch), got " + std::string(py::str(obj.get_type())));
  }
  return storage;
}

std::shared_ptr<const Loss> loss_arg(py::handle obj) {
  if (py::isinstance<py::str>(obj)) return make_loss(obj.cast<std::string>());
  if (py::isinstance<Loss>(obj)) return obj.cast<std::shared_ptr<Loss>>();
  fail(Kind::Config, "loss: expected a name (" + join(loss_kinds()) + ") or a cvnode.Loss, got " +
                         std::string(py::str(obj.get_type())));
}

const Problem& problem_arg(py::handle obj, py::handle loss, const char* default_loss, bool one,
                           std::unique_ptr<Problem>& storage) {
  if (py::isinstance<Problem>(obj)) {
    if (!loss.is_none()) fail(Kind::Config, "loss: a Problem brings its own loss; give none with it");
    return obj.cast<const Problem&>();
  }
  if (py::isinstance<py::str>(obj))  // iterable, but never series
    throw py::type_error("expected a Trajectory, a list of Trajectory, a Batch or a Problem, got str");
  std::vector<Trajectory> series;
  if (one && py::isinstance<Trajectory>(obj)) series.push_back(obj.cast<const Trajectory&>());
  else series = batch_arg(obj, series);
  storage = std::make_unique<Problem>(std::move(series), loss_arg(loss.is_none() ? py::str(default_loss) : loss));
  return *storage;
}

void bind_problem(py::module_& m) {
  py::class_<Event>(m, "Event",
                    "A discontinuity of a series: bolus (z[compartment] += amount), infusion (amount / duration "
                    "added to dz[compartment]/dt for `duration`), remove (z[compartment] *= 1 - amount) or reset "
                    "(z = 0). Amounts in state units. The solvers refuse events until the core applies them.")
      .def(py::init([](double time, int compartment, const std::string& kind, double amount, double duration) {
             Event e;
             e.time = time;
             e.compartment = compartment;
             e.kind = parse_event_kind(kind);
             e.amount = amount;
             e.duration = duration;
             return e;
           }),
           py::arg("time"), py::arg("compartment") = 0, py::arg("kind") = "bolus", py::arg("amount") = 0.0,
           py::arg("duration") = 0.0)
      .def_readonly("time", &Event::time)
      .def_readonly("compartment", &Event::compartment)
      .def_property_readonly("kind", [](const Event& e) { return event_kind_name(e.kind); })
      .def_readonly("amount", &Event::amount)
      .def_readonly("duration", &Event::duration)
      .def("__repr__", [](const Event& e) {
        return "<cvnode.Event " + std::string(event_kind_name(e.kind)) + " t=" + std::to_string(e.time) +
               " compartment " + std::to_string(e.compartment) + " amount " + std::to_string(e.amount) + ">";
      });

  py::class_<Controls>(m, "Controls",
                       "Inputs u(t) of a series at knots `times` (rows of `values`), interpolated piecewise_constant, "
                       "linear or monotone_cubic. The solvers refuse controls until the core applies them.")
      .def(py::init([](py::handle times, py::handle values, const std::string& interpolation) {
             Controls c;
             c.times = to_vector(times, "Controls: times", Kind::Data);
             c.values = to_matrix(values, "Controls: values", Kind::Data, c.times.size(), -1, false, true);
             c.interpolation = parse_control_interpolation(interpolation);
             return c;
           }),
           py::arg("times"), py::arg("values"), py::arg("interpolation") = "piecewise_constant")
      .def_property_readonly("times", [](const Controls& c) { return to_numpy(c.times); })
      .def_property_readonly("values", [](const Controls& c) { return to_numpy(c.values); })
      .def_property_readonly("interpolation", [](const Controls& c) { return control_interpolation_name(c.interpolation); });

  py::class_<Trajectory>(m, "Trajectory",
                         "One series to fit: z(t0) = z0, measurements `values` (times x channels) at strictly "
                         "increasing `times` >= t0, an optional mask (1/True = observed). Immutable; checked "
                         "on construction (DataError naming the field).")
      .def(py::init(&make_trajectory), py::arg("t0"), py::arg("z0"), py::arg("times"), py::arg("values"),
           py::arg("mask") = py::none(), py::arg("t_end") = py::none(), py::arg("events") = py::none(),
           py::arg("controls") = py::none(), py::arg("covariates") = py::none())
      .def_property_readonly("t0", [](const Trajectory& t) { return t.t0; })
      .def_property_readonly("z0", [](const Trajectory& t) { return to_numpy(t.z0); })
      .def_property_readonly("times", [](const Trajectory& t) { return to_numpy(t.times); })
      .def_property_readonly("values", [](const Trajectory& t) { return to_numpy(t.values); })
      .def_property_readonly("mask", [](const Trajectory& t) { return mask_to_numpy(t.mask); })
      .def_property_readonly("t_end", [](const Trajectory& t) -> py::object {
        if (std::isnan(t.t_end)) return py::none();
        return py::float_(t.t_end);
      })
      .def_readonly("events", &Trajectory::events)
      .def_property_readonly("controls", [](const Trajectory& t) -> py::object {
        if (t.controls.empty()) return py::none();
        return py::cast(t.controls);
      })
      .def_property_readonly("covariates", [](const Trajectory& t) { return to_numpy(t.covariates); })
      .def_property_readonly("observed_entries", &Trajectory::observed_entries)
      .def("__repr__", [](const Trajectory& t) {
        return "<cvnode.Trajectory t0=" + std::to_string(t.t0) + ", state " + std::to_string(t.z0.size()) + ", " +
               std::to_string(t.times.size()) + " times x " + std::to_string(t.values.cols()) + " channels>";
      });

  py::class_<Batch, std::shared_ptr<Batch>>(
      m, "Batch",
      "An immutable list of Trajectory, for repeated gradients of the same series without converting them "
      "each call. Any list of Trajectory works where a Batch does.")
      .def(py::init([](py::handle items) {
             auto b = std::make_shared<Batch>();
             std::vector<Trajectory> storage;
             const auto& v = batch_arg(items, storage);
             b->items = &v == &storage ? std::move(storage) : v;
             return b;
           }),
           py::arg("trajectories"))
      .def("__len__", [](const Batch& b) { return b.items.size(); })
      .def("__getitem__",
           [](const Batch& b, long i) {
             const long n = static_cast<long>(b.items.size());
             if (i < 0) i += n;
             if (i < 0 || i >= n) throw py::index_error("Batch index out of range");
             return b.items[i];
           })
      .def("__repr__", [](const Batch& b) { return "<cvnode.Batch of " + std::to_string(b.items.size()) + " trajectories>"; });

  py::class_<Loss, std::shared_ptr<Loss>>(
      m, "Loss",
      "A loss on the observed channels at the observation times (docs/config.md [loss]): half_sse (0.5 sum of "
      "squares), mse_mean, l1_mean (means over the observed entries of the whole problem), gaussian_nll (needs "
      "sigma, one per channel); optional per-channel weights. Losses are the library's registered kinds.")
      .def(py::init([](const std::string& kind, py::handle sigma, py::handle weight) {
             LossSpec spec;
             spec.kind = kind;
             if (!sigma.is_none()) spec.sigma = to_vector(sigma, "Loss: sigma", Kind::Config);
             if (!weight.is_none()) spec.weight = to_vector(weight, "Loss: weight", Kind::Config);
             return std::const_pointer_cast<Loss>(make_loss(spec));
           }),
           py::arg("kind") = "half_sse", py::arg("sigma") = py::none(), py::arg("weight") = py::none())
      .def_property_readonly("name", &Loss::name)
      .def_property_readonly("reduction",
                             [](const Loss& l) { return l.reduction() == LossReduction::Mean ? "mean" : "sum"; })
      .def_property_readonly("param_size", &Loss::param_size)
      .def("initial_parameters", [](const Loss& l) { return to_numpy(l.initial_parameters()); })
      .def("__repr__", [](const Loss& l) { return "<cvnode.Loss " + l.name() + ">"; });
  m.def("loss_kinds", &loss_kinds, "The registered loss kinds.");

  py::class_<Problem, std::shared_ptr<Problem>>(
      m, "Problem",
      "What a gradient is taken of: series (a list of Trajectory or a Batch) scored by a loss (a name or a "
      "cvnode.Loss), with the loss's parameters. Immutable; build it once for many gradients.")
      .def(py::init([](py::handle series, py::handle loss, py::handle loss_parameters) {
             std::unique_ptr<Problem> p;
             problem_arg(series, loss, "mse_mean", false, p);
             if (!loss_parameters.is_none())
               p->set_loss_parameters(to_vector(loss_parameters, "Problem: loss_parameters", Kind::Config));
             return std::shared_ptr<Problem>(std::move(p));
           }),
           py::arg("series"), py::arg("loss") = "mse_mean", py::arg("loss_parameters") = py::none())
      .def("__len__", &Problem::size)
      .def("__getitem__",
           [](const Problem& p, int i) {
             if (i < 0) i += p.size();
             if (i < 0 || i >= p.size()) throw py::index_error("Problem index out of range");
             return p.series(i);
           })
      .def_property_readonly("loss", [](const Problem& p) { return std::const_pointer_cast<Loss>(p.loss_ptr()); })
      .def_property_readonly("loss_parameters", [](const Problem& p) { return to_numpy(p.loss_parameters()); })
      .def_property_readonly("entries", &Problem::entries)
      .def_property_readonly("normalization", &Problem::normalization)
      .def("__repr__", [](const Problem& p) {
        return "<cvnode.Problem: " + std::to_string(p.size()) + " series, loss " + p.loss().name() + ">";
      });
}

}  // namespace cvnode::python
