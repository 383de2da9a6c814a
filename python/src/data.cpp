// cvnode.Dataset, Series, Normalization, Split and generate(): the HDF5 datasets of
// docs/dataset-format.md from and to NumPy arrays. Every check is the library's own
// (Dataset::add names the series and the field); this file only converts.
#include <pybind11/stl.h>

#include "convert.h"
#include "cvnode/dataset.h"
#include "cvnode/generators.h"
#include "problem.h"

namespace cvnode::python {

namespace {

std::string path_arg(py::handle p) { return py::str(py::module_::import("os").attr("fspath")(p)); }

py::object optional_vector(const Vector& v) {
  if (v.size() == 0) return py::none();
  return to_numpy(v);
}

py::object bool_mask(const Matrix& mask, Eigen::Index rows, Eigen::Index cols) {
  py::array_t<bool> a({rows, cols});
  auto w = a.mutable_unchecked<2>();
  for (Eigen::Index r = 0; r < rows; ++r)
    for (Eigen::Index c = 0; c < cols; ++c) w(r, c) = mask.size() == 0 || mask(r, c) != 0;
  return std::move(a);
}

Evid evid_arg(const std::string& kind) {
  for (Evid k : {Evid::Dose, Evid::Reset, Evid::ResetDose})
    if (kind == evid_name(k)) return k;
  fail(Kind::Data, "EventRecord: kind = '" + kind + "' (expected dose, reset or reset_dose)");
}

Series make_series(const std::string& id, py::handle times, py::handle values, py::handle mask, py::handle t0,
                   py::handle initial_state, py::handle covariates, py::handle control_times,
                   py::handle control_values, py::handle events) {
  Series s;
  s.id = id;
  const std::string who = "series '" + id + "': ";
  s.times = to_vector(times, who + "times", Kind::Data);
  // NaN is allowed where masked; Dataset::add reports an unmasked one with its row and channel.
  s.values = to_matrix(values, who + "values", Kind::Data, s.times.size(), -1, true, true);
  if (!mask.is_none()) s.mask = to_matrix(mask, who + "mask", Kind::Data, s.values.rows(), s.values.cols(), false, true);
  if (!t0.is_none()) s.t0 = to_double(t0, who + "t0", Kind::Data);
  else if (s.times.size() > 0) s.t0 = s.times[0];
  if (!initial_state.is_none()) s.initial_state = to_vector(initial_state, who + "initial_state", Kind::Data);
  if (!covariates.is_none()) s.covariates = to_vector(covariates, who + "covariates", Kind::Data);
  if (!control_times.is_none()) s.control_times = to_vector(control_times, who + "control_times", Kind::Data);
  if (!control_values.is_none())
    s.control_values = to_matrix(control_values, who + "control_values", Kind::Data, s.control_times.size(), -1,
                                 false, true);
  else if (s.control_times.size() > 0)
    fail(Kind::Data, who + "control_times without control_values");
  if (!events.is_none()) {
    try {
      for (py::handle h : events) {
        if (!py::isinstance<EventRecord>(h))
          fail(Kind::Data, who + "events: expected cvnode.EventRecord items, got " + std::string(py::str(h.get_type())));
        s.events.push_back(h.cast<EventRecord>());
      }
    } catch (py::error_already_set&) {
      fail(Kind::Data, who + "events: expected a list of cvnode.EventRecord");
    }
  }
  return s;
}

std::vector<std::size_t> indices_arg(py::handle obj, std::size_t size, const char* what) {
  std::vector<std::size_t> out;
  if (obj.is_none()) {
    for (std::size_t i = 0; i < size; ++i) out.push_back(i);
    return out;
  }
  for (int i : to_ints(obj, what, Kind::Config)) {
    if (i < 0 || static_cast<std::size_t>(i) >= size)
      fail(Kind::Config, std::string(what) + ": index " + std::to_string(i) + " out of range (" +
                             std::to_string(size) + " series)");
    out.push_back(static_cast<std::size_t>(i));
  }
  return out;
}

}  // namespace

void bind_data(py::module_& m) {
  py::class_<EventRecord>(m, "EventRecord",
                          "A dosing record of a series as the data give it (NONMEM's AMT, RATE, CMT, EVID): kind "
                          "dose (amount into `compartment`, at once with rate 0 or infused at `rate`), reset "
                          "(every compartment to zero) or reset_dose. Dataset.trajectories turns records into "
                          "the solver's events.")
      .def(py::init([](double time, int compartment, double amount, double rate, const std::string& kind) {
             EventRecord e;
             e.time = time;
             e.compartment = compartment;
             e.amount = amount;
             e.rate = rate;
             e.kind = evid_arg(kind);
             return e;
           }),
           py::arg("time"), py::arg("compartment") = 0, py::arg("amount") = 0.0, py::arg("rate") = 0.0,
           py::arg("kind") = "dose")
      .def_readonly("time", &EventRecord::time)
      .def_readonly("compartment", &EventRecord::compartment)
      .def_readonly("amount", &EventRecord::amount)
      .def_readonly("rate", &EventRecord::rate)
      .def_property_readonly("kind", [](const EventRecord& e) { return evid_name(e.kind); })
      .def_property_readonly("duration", &EventRecord::duration)
      .def("__eq__", [](const EventRecord& a, const EventRecord& b) { return a == b; })
      .def("__repr__", [](const EventRecord& e) {
        return std::string("<cvnode.EventRecord ") + evid_name(e.kind) + " t=" + std::to_string(e.time) +
               " compartment " + std::to_string(e.compartment) + " amount " + std::to_string(e.amount) +
               " rate " + std::to_string(e.rate) + ">";
      });

  py::class_<Series>(m, "Series",
                     "One measured series of a Dataset: `values` (times x channels) at strictly increasing "
                     "`times`, an optional mask (True/1 = observed; masked values may be NaN), t0 (default: the "
                     "first time), and optionally a known initial state, static covariates and controls u(t).")
      .def(py::init(&make_series), py::arg("id"), py::arg("times"), py::arg("values"), py::arg("mask") = py::none(),
           py::arg("t0") = py::none(), py::arg("initial_state") = py::none(), py::arg("covariates") = py::none(),
           py::arg("control_times") = py::none(), py::arg("control_values") = py::none(), py::arg("events") = py::none())
      .def_readonly("id", &Series::id)
      .def_readonly("events", &Series::events)
      .def_readonly("t0", &Series::t0)
      .def_property_readonly("times", [](const Series& s) { return to_numpy(s.times); })
      .def_property_readonly("values", [](const Series& s) { return to_numpy(s.values); })
      .def_property_readonly("mask", [](const Series& s) { return bool_mask(s.mask, s.values.rows(), s.values.cols()); })
      .def_property_readonly("initial_state", [](const Series& s) { return optional_vector(s.initial_state); })
      .def_property_readonly("covariates", [](const Series& s) { return optional_vector(s.covariates); })
      .def_property_readonly("control_times", [](const Series& s) { return optional_vector(s.control_times); })
      .def_property_readonly("control_values", [](const Series& s) -> py::object {
        if (s.control_values.size() == 0) return py::none();
        return to_numpy(s.control_values);
      })
      .def("__repr__", [](const Series& s) {
        return "<cvnode.Series '" + s.id + "': " + std::to_string(s.times.size()) + " times x " +
               std::to_string(s.values.cols()) + " channels>";
      });

  py::class_<Normalization>(m, "Normalization", "Per-channel y' = (y - mean) / std.")
      .def(py::init([](py::handle mean, py::handle std_) {
             Normalization n;
             n.mean = to_vector(mean, "Normalization: mean", Kind::Data);
             n.std = to_vector(std_, "Normalization: std", Kind::Data, n.mean.size());
             for (Eigen::Index i = 0; i < n.std.size(); ++i)
               if (!(n.std[i] > 0)) fail(Kind::Data, "Normalization: std[" + std::to_string(i) + "] must be > 0");
             return n;
           }),
           py::arg("mean"), py::arg("std"))
      .def_property_readonly("mean", [](const Normalization& n) { return to_numpy(n.mean); })
      .def_property_readonly("std", [](const Normalization& n) { return to_numpy(n.std); });

  py::class_<Split>(m, "Split", "Series indices of the train, validation and test parts.")
      .def_readonly("train", &Split::train)
      .def_readonly("validation", &Split::validation)
      .def_readonly("test", &Split::test);

  py::class_<Dataset>(m, "Dataset",
                      "Many series measured at their own irregular times (docs/dataset-format.md). Build it with "
                      "Dataset(channels) and add(), or read(path); write(path) is atomic.")
      .def(py::init([](py::handle channels, py::handle units) {
             auto names = to_strings(channels, "Dataset: channels", Kind::Data);
             std::vector<std::string> u = units.is_none() ? std::vector<std::string>(names.size())
                                                          : to_strings(units, "Dataset: units", Kind::Data);
             if (u.size() != names.size())
               fail(Kind::Data, "Dataset: " + std::to_string(u.size()) + " units for " +
                                    std::to_string(names.size()) + " channels");
             return Dataset(names, u);
           }),
           py::arg("channels"), py::arg("units") = py::none())
      .def_static(
          "read",
          [](py::handle path, bool verify) {
            const std::string p = path_arg(path);
            py::gil_scoped_release release;
            return Dataset::read(p, verify);
          },
          py::arg("path"), py::arg("verify") = true)
      .def_static(
          "read_range",
          [](py::handle path, std::size_t first, std::size_t count) {
            return Dataset::read_range(path_arg(path), first, count);
          },
          py::arg("path"), py::arg("first"), py::arg("count"))
      .def_static("count_series", [](py::handle path) { return Dataset::count_series(path_arg(path)); }, py::arg("path"))
      .def("write", [](const Dataset& d, py::handle path) { d.write(path_arg(path)); }, py::arg("path"))
      .def("add", [](Dataset& d, const Series& s) { d.add(s); }, py::arg("series"))
      .def(
          "add",
          [](Dataset& d, const std::string& id, py::handle times, py::handle values, py::handle mask, py::handle t0,
             py::handle initial_state, py::handle covariates, py::handle control_times, py::handle control_values,
             py::handle events) {
            d.add(make_series(id, times, values, mask, t0, initial_state, covariates, control_times, control_values,
                              events));
          },
          py::arg("id"), py::arg("times"), py::arg("values"), py::arg("mask") = py::none(), py::arg("t0") = py::none(),
          py::arg("initial_state") = py::none(), py::arg("covariates") = py::none(),
          py::arg("control_times") = py::none(), py::arg("control_values") = py::none(), py::arg("events") = py::none())
      .def("__len__", &Dataset::size)
      .def("__getitem__",
           [](const Dataset& d, long i) {
             const long n = static_cast<long>(d.size());
             if (i < 0) i += n;
             if (i < 0 || i >= n) throw py::index_error("Dataset index " + std::to_string(i) + " out of range");
             return d.series(static_cast<std::size_t>(i));
           })
      .def_property_readonly("ids", [](const Dataset& d) {
        std::vector<std::string> ids;
        for (std::size_t i = 0; i < d.size(); ++i) ids.push_back(d.id(i));
        return ids;
      })
      .def_property_readonly("channel_names", &Dataset::channel_names)
      .def_property_readonly("channel_units", &Dataset::channel_units)
      .def_property_readonly("channels", &Dataset::channels)
      .def_property_readonly("observations", &Dataset::observations)
      .def_property("covariate_names", &Dataset::covariate_names,
                    [](Dataset& d, py::handle v) { d.set_covariate_names(to_strings(v, "covariate_names", Kind::Data)); })
      .def_property("control_names", &Dataset::control_names,
                    [](Dataset& d, py::handle v) { d.set_control_names(to_strings(v, "control_names", Kind::Data)); })
      .def_property("compartment_names", &Dataset::compartment_names,
                    [](Dataset& d, py::handle v) {
                      d.set_compartment_names(to_strings(v, "compartment_names", Kind::Data));
                    })
      .def_property("control_interpolation", &Dataset::control_interpolation, &Dataset::set_control_interpolation)
      .def_property("provenance", &Dataset::provenance, &Dataset::set_provenance)
      .def_property_readonly("initial_state_size", &Dataset::initial_state_size)
      .def_property_readonly("covariate_count", &Dataset::covariate_count)
      .def_property_readonly("control_count", &Dataset::control_count)
      .def_property_readonly("normalization", [](const Dataset& d) -> py::object {
        if (d.normalization().empty()) return py::none();
        return py::cast(d.normalization());
      })
      .def_property_readonly("normalized", &Dataset::normalized)
      .def("missing_fraction", [](const Dataset& d) { return to_numpy(d.missing_fraction()); })
      .def("split", &Dataset::split, py::arg("train_fraction") = 0.8, py::arg("val_fraction") = 0.2,
           py::arg("seed") = 0)
      .def(
          "subset",
          [](const Dataset& d, py::handle indices) { return d.subset(indices_arg(indices, d.size(), "subset: indices")); },
          py::arg("indices"))
      .def(
          "compute_normalization",
          [](const Dataset& d, py::handle indices) {
            return d.compute_normalization(indices_arg(indices, d.size(), "compute_normalization: indices"));
          },
          py::arg("indices") = py::none())
      .def("normalize", &Dataset::normalize, py::arg("normalization"))
      .def("denormalize", &Dataset::denormalize)
      .def(
          "trajectories",
          [](const Dataset& d, py::object state_size, py::handle indices, py::handle compartment_state,
             py::handle dose_scale) {
            const int n = state_size.is_none() ? d.channels() : state_size.cast<int>();
            if (n < d.channels())
              fail(Kind::Config, "trajectories: state_size = " + std::to_string(n) + " is below the " +
                                     std::to_string(d.channels()) + " channels");
            TrajectoryOptions o;
            if (!compartment_state.is_none())
              o.compartment_state = to_ints(compartment_state, "trajectories: compartment_state", Kind::Config);
            if (!dose_scale.is_none()) o.dose_scale = to_vector(dose_scale, "trajectories: dose_scale", Kind::Config);
            auto b = std::make_shared<Batch>();
            b->items = d.trajectories(indices_arg(indices, d.size(), "trajectories: indices"), n, o);
            return b;
          },
          py::arg("state_size") = py::none(), py::arg("indices") = py::none(), py::arg("compartment_state") = py::none(),
          py::arg("dose_scale") = py::none(),
          "The series as a Batch for a state of state_size >= channels (default: channels): z0 is the stored "
          "initial state, else the first observation (missing entries 0), padded with zeros; event records become "
          "the solver's events (compartment k into state component compartment_state[k], amounts times "
          "dose_scale[k]), controls and covariates the series' inputs.")
      .def("__repr__", [](const Dataset& d) {
        return "<cvnode.Dataset: " + std::to_string(d.size()) + " series, " + std::to_string(d.channels()) +
               " channels, " + std::to_string(d.observations()) + " observation rows>";
      });

  m.def("generator_systems", &generator_systems, "The systems generate() knows.");
  m.def(
      "generate",
      [](const std::string& system, int series, int observations, int grid, bool irregular, double t_end,
         double t_start, double noise, bool relative_noise, double missing, std::uint64_t seed) {
        GeneratorOptions o;
        o.system = system;
        o.series = series;
        o.observations = observations;
        o.grid = grid;
        o.irregular = irregular;
        o.t_end = t_end;
        o.t_start = t_start;
        o.noise = noise;
        o.relative_noise = relative_noise;
        o.missing = missing;
        o.seed = seed;
        py::gil_scoped_release release;
        return generate(o);
      },
      py::arg("system") = "lotka_volterra", py::arg("series") = 64, py::arg("observations") = 30,
      py::arg("grid") = 0, py::arg("irregular") = true, py::arg("t_end") = 0.0, py::arg("t_start") = 0.0,
      py::arg("noise") = 0.01, py::arg("relative_noise") = false, py::arg("missing") = 0.0, py::arg("seed") = 0,
      "A synthetic Dataset from known dynamics (spiral, lotka_volterra, damped_oscillator, robertson): the same "
      "as `cvnode data generate`.");
}

}  // namespace cvnode::python
