// Training from Python: the library's own `cvnode fit` pipeline (run_fit) with a progress
// callback, trained models from checkpoints, their predictions and evaluations. The Python layer
// (cvnode/_train.py) wraps the dicts returned here in small result classes.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <filesystem>

#include "convert.h"
#include "cvnode/checkpoint.h"
#include "app/fit.h"
#include "cvnode/observation_map.h"
#include "toml_text.h"

namespace cvnode::python {

namespace fs = std::filesystem;

namespace {

std::string fspath(py::handle p) { return py::str(py::module_::import("os").attr("fspath")(p)); }

py::dict metrics_dict(const EpochMetrics& m) {
  py::dict d;
  const auto names = EpochMetrics::names();
  const auto values = m.values();
  for (std::size_t i = 0; i < names.size(); ++i) d[py::str(names[i])] = values[i];
  return d;
}

py::dict history_dict(const std::vector<EpochMetrics>& history) {
  py::dict d;
  const auto names = EpochMetrics::names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    Vector col(static_cast<Eigen::Index>(history.size()));
    for (std::size_t r = 0; r < history.size(); ++r) col[static_cast<Eigen::Index>(r)] = history[r].values()[i];
    d[py::str(names[i])] = to_numpy(col);
  }
  return d;
}

py::list failures_list(const std::vector<SeriesFailure>& failures, const std::vector<std::string>& ids) {
  py::list out;
  for (const auto& f : failures)
    out.append(py::dict(py::arg("series") = ids.at(f.series), py::arg("flag") = f.flag,
                        py::arg("flag_name") = f.flag_name, py::arg("time") = f.time, py::arg("message") = f.message));
  return out;
}

// The per-channel errors of an Evaluation, in normalised and in data units.
py::dict evaluation_dict(const Evaluation& ev, const Normalization& n, const std::vector<std::string>& ids) {
  const Vector scale = n.empty() ? Vector(Vector::Ones(ev.rmse.size())) : n.std;
  return py::dict(py::arg("loss") = ev.loss, py::arg("rmse") = to_numpy(Vector(ev.rmse.cwiseProduct(scale))),
                  py::arg("mae") = to_numpy(Vector(ev.mae.cwiseProduct(scale))),
                  py::arg("rmse_model_units") = to_numpy(ev.rmse), py::arg("mae_model_units") = to_numpy(ev.mae),
                  py::arg("rmse_all_model_units") = ev.rmse_all, py::arg("nfe") = ev.nfe,
                  py::arg("series") = ev.series, py::arg("failed") = failures_list(ev.failed, ids));
}

Config fit_config(py::handle config, const std::vector<std::string>& overrides, const std::string& resume) {
  if (config.is_none()) {
    if (resume.empty()) fail(Kind::Config, "fit: give a configuration (a dict or a TOML file), or resume=CHECKPOINT");
    // The checkpoint carries the resolved configuration of the run it continues.
    return Config::parse(Checkpoint::read(resume).config, resume + " (stored configuration)", overrides);
  }
  if (py::isinstance<py::dict>(config)) {
    Config c = Config::parse(toml_document(config, "fit: config"), "fit: config dict", overrides);
    // As for a file, the stored configuration names the data absolutely (here: from the working
    // directory), so that a checkpoint can be evaluated from anywhere.
    if (!c.data.file.empty() && fs::path(c.data.file).is_relative())
      c.data.file = fs::weakly_canonical(fs::absolute(c.data.file)).string();
    return c;
  }
  return Config::load(fspath(config), overrides);
}

// The series of a Dataset in data units as the observed series of a trained model (normalised
// with its statistics; z0 only where the data store an initial state), as load_fit_data makes them.
void model_series(const TrainedModel& tm, Dataset ds, std::vector<Trajectory>& series,
                  std::vector<std::string>& ids) {
  if (ds.channels() != tm.model->observed())
    fail(Kind::Data, "the dataset has " + std::to_string(ds.channels()) + " channels, the model " +
                         std::to_string(tm.model->observed()));
  if (ds.normalized()) ds.denormalize();
  if (!tm.normalization.empty()) ds.normalize(tm.normalization);
  for (std::size_t i = 0; i < ds.size(); ++i) {
    Trajectory tr = ds.trajectory(i, ds.channels());
    if (ds.initial_state_size() == 0) tr.z0.resize(0);
    else tr.z0 = tr.z0.head(ds.channels()).eval();
    series.push_back(std::move(tr));
    ids.push_back(ds.id(i));
  }
}

struct Trained {
  TrainedModel tm;
  std::string path;
};

}  // namespace

void bind_train(py::module_& m) {
  m.def(
      "_fit",
      [](py::handle config, py::handle out, std::vector<std::string> overrides, py::handle resume,
         int stop_after_epoch, py::object callback, py::object log) {
        const std::string resume_path = resume.is_none() ? "" : fspath(resume);
        const Config cfg = fit_config(config, overrides, resume_path);
        FitOptions fo;
        fo.out_dir = fspath(out);
        fo.resume = resume_path;
        fo.stop_after_epoch = stop_after_epoch;
        fo.quiet = log.is_none();
        if (!log.is_none())
          fo.log = [log](const std::string& line) {
            py::gil_scoped_acquire gil;
            log(line);
          };
        fo.on_epoch = [callback](const TrainState& s) {
          py::gil_scoped_acquire gil;
          // Ctrl-C in a notebook or a terminal ends the fit here, between epochs.
          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
          if (!callback.is_none() && !s.history.empty()) callback(metrics_dict(s.history.back()));
        };
        FitResult r;
        {
          py::gil_scoped_release release;
          r = run_fit(cfg, fo);
        }
        const TrainState& s = r.state;
        const fs::path dir(fo.out_dir);
        py::dict d;
        d["out"] = fo.out_dir;
        d["best_checkpoint"] = (dir / "best.h5").string();
        d["latest_checkpoint"] = (dir / "latest.h5").string();
        d["metrics_csv"] = (dir / "metrics.csv").string();
        d["config"] = cfg.to_toml();
        d["epochs"] = s.epoch;
        d["steps"] = s.step;
        d["best_epoch"] = s.best_epoch;
        d["best_val_loss"] = s.best_val;
        d["stopped_early"] = s.stopped_early;
        d["failures"] = s.failures_total;
        d["rollbacks"] = s.rollbacks;
        d["params"] = to_numpy(s.params);
        d["best_params"] = to_numpy(s.best_params);
        d["physical"] = r.physical.size() ? py::object(to_numpy(r.physical)) : py::object(py::none());
        d["history"] = history_dict(s.history);
        d["seconds"] = r.seconds;
        return d;
      },
      py::arg("config"), py::arg("out"), py::arg("overrides"), py::arg("resume"), py::arg("stop_after_epoch"),
      py::arg("callback"), py::arg("log"));

  py::class_<Trained, std::shared_ptr<Trained>>(m, "TrainedModel",
                                                "A trained model from a checkpoint (load_checkpoint): its "
                                                "configuration, dynamics, parameters and normalisation.")
      .def_readonly("path", &Trained::path)
      .def_property_readonly("config_toml", [](const Trained& t) { return t.tm.config.to_toml(); })
      .def_property_readonly("model_spec", [](const Trained& t) { return t.tm.checkpoint.model_spec; })
      .def_property_readonly("epoch", [](const Trained& t) { return t.tm.checkpoint.epoch; })
      .def_property_readonly("step", [](const Trained& t) { return t.tm.checkpoint.step; })
      .def_property_readonly("parameters", [](const Trained& t) { return to_numpy(t.tm.checkpoint.parameters); })
      .def_property_readonly("theta", [](const Trained& t) { return to_numpy(t.tm.theta); })
      .def_property_readonly("loss_parameters", [](const Trained& t) { return to_numpy(t.tm.phi); })
      .def_property_readonly("readout", [](const Trained& t) -> py::object {
        // A learned linear readout's C (model.readout = linear), from the loss's parameters.
        const auto map = t.tm.model->observation_map();
        if (const auto* r = dynamic_cast<const LinearReadout*>(map.get())) return to_numpy(r->matrix(t.tm.phi));
        return py::none();
      })
      .def_property_readonly("normalization", [](const Trained& t) -> py::object {
        if (t.tm.normalization.empty()) return py::none();
        return py::cast(t.tm.normalization);
      })
      .def_property_readonly("observed", [](const Trained& t) { return t.tm.model->observed(); })
      .def_property_readonly("state_size", [](const Trained& t) { return t.tm.model->state_size(); })
      .def_property_readonly("description", [](const Trained& t) { return t.tm.model->describe(); })
      .def_property_readonly("history",
                             [](const Trained& t) { return history_dict(from_checkpoint(t.tm.checkpoint).history); })
      .def_property_readonly("dynamics",
                             [](std::shared_ptr<Trained> t) {
                               // Shares ownership with this object: the model lives while either does.
                               return std::shared_ptr<Dynamics>(
                                   t, const_cast<Dynamics*>(&t->tm.model->dynamics()));
                             })
      .def(
          "_predict",
          [](const Trained& t, const Dataset& data, py::handle times, int threads) {
            std::vector<Trajectory> series;
            std::vector<std::string> ids;
            model_series(t.tm, data, series, ids);
            std::vector<Vector> ts;
            if (times.is_none()) {
              for (const auto& s : series) ts.push_back(s.times);
            } else if (py::isinstance<py::list>(times) || py::isinstance<py::tuple>(times)) {
              if (py::len(times) != series.size())
                fail(Kind::Data, "predict: " + std::to_string(py::len(times)) + " time arrays for " +
                                     std::to_string(series.size()) + " series");
              std::size_t i = 0;
              for (py::handle h : times) ts.push_back(to_vector(h, "predict: times[" + std::to_string(i++) + "]", Kind::Data));
            } else {
              ts.assign(series.size(), to_vector(times, "predict: times", Kind::Data));
            }
            std::vector<Prediction> p;
            {
              py::gil_scoped_release release;
              p = predict(t.tm, series, ids, ts, t.tm.config.train.solver, threads);
            }
            py::list out;
            for (const auto& r : p) {
              if (!r.error.empty())
                throw SolverError("predict: series '" + r.id + "'", 0, "error", NAN, r.error);
              out.append(to_numpy(r.values));
            }
            return out;
          },
          py::arg("data"), py::arg("times"), py::arg("threads"))
      .def(
          "_evaluate",
          [](const Trained& t, py::handle data, int threads) {
            std::vector<Trajectory> series;
            std::vector<std::string> ids;
            if (py::isinstance<py::str>(data)) {
              const FitData fd = load_fit_data(t.tm.config);
              split_series(fd, data.cast<std::string>(), series, ids);
            } else {
              model_series(t.tm, data.cast<const Dataset&>(), series, ids);
            }
            if (series.empty()) fail(Kind::Data, "evaluate: no series to evaluate");
            std::vector<Trajectory> lifted;
            for (std::size_t s = 0; s < series.size(); ++s) lifted.push_back(t.tm.model->lift(series[s], ids[s]));
            Evaluation ev;
            {
              py::gil_scoped_release release;
              ev = evaluate(t.tm.model->dynamics(), t.tm.theta, t.tm.problem(std::move(lifted)),
                            t.tm.config.train.solver, threads);
            }
            return evaluation_dict(ev, t.tm.normalization, ids);
          },
          py::arg("data"), py::arg("threads"));

  m.def("_toml_value", &toml_value, py::arg("value"), py::arg("key"));

  m.def(
      "_load_checkpoint",
      [](py::handle path, std::vector<std::string> overrides) {
        auto t = std::make_shared<Trained>();
        t->path = fspath(path);
        t->tm = load_trained(t->path, overrides);
        return t;
      },
      py::arg("path"), py::arg("overrides"));
}

}  // namespace cvnode::python
