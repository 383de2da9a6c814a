// `cvnode data ...`: import, export, inspect, split and generate datasets. Option parsing and
// printing only; the work is in the library (dataset.h, csv.h, generators.h).
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "cvnode/csv.h"
#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "cvnode/generators.h"

namespace cvnode::app {

namespace {

struct ImportArgs {
  std::string file, out, id, time = "time", channel = "value", series_id = "series_0";
  std::vector<std::string> values, units;
  bool wide = false;
};

struct SplitArgs {
  std::string file, prefix;
  double train = 0.8, validation = 0.1;
  std::uint64_t seed = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::string min_med_max(const std::vector<double>& v) {
  if (v.empty()) return "n/a";
  std::ostringstream o;
  o << *std::min_element(v.begin(), v.end()) << " / " << median(v) << " / " << *std::max_element(v.begin(), v.end());
  return o.str();
}

void info(const std::string& file, bool per_series) {
  const Dataset d = Dataset::read(file);
  const int C = d.channels();
  std::cout << file << ": " << d.size() << " series, " << d.observations() << " observation times, " << C
            << " channel(s), format version " << kDatasetFormatVersion << "\n";
  const Vector missing = d.missing_fraction();
  for (int c = 0; c < C; ++c)
    std::cout << "  channel " << d.channel_names()[c] << " [" << (d.channel_units()[c].empty() ? "-" : d.channel_units()[c])
              << "]: missing " << std::fixed << std::setprecision(2) << 100 * missing[c] << "%" << std::defaultfloat
              << std::setprecision(6) << "\n";
  std::vector<double> counts, firsts, lasts, dts, series_dt;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const Series s = d.series(i);
    counts.push_back(static_cast<double>(s.times.size()));
    firsts.push_back(s.times[0]);
    lasts.push_back(s.times[s.times.size() - 1]);
    std::vector<double> own;
    for (Eigen::Index k = 1; k < s.times.size(); ++k) own.push_back(s.times[k] - s.times[k - 1]);
    dts.insert(dts.end(), own.begin(), own.end());
    if (per_series) {
      const double miss = 1.0 - s.mask.sum() / static_cast<double>(s.mask.size());
      std::cout << "  series " << s.id << ": " << s.times.size() << " times on [" << s.times[0] << ", "
                << s.times[s.times.size() - 1] << "], t0 " << s.t0 << ", interval min/median/max "
                << min_med_max(own) << ", missing " << std::fixed << std::setprecision(2) << 100 * miss << "%"
                << std::defaultfloat << std::setprecision(6) << "\n";
    }
  }
  std::cout << "  times per series (min / median / max): " << min_med_max(counts) << "\n"
            << "  first time: " << min_med_max(firsts) << "\n"
            << "  last time: " << min_med_max(lasts) << "\n"
            << "  sampling interval over all series: " << min_med_max(dts) << "\n"
            << "  initial states: " << (d.initial_state_size() ? std::to_string(d.initial_state_size()) + " entries" : "none")
            << ", covariates: " << d.covariate_count() << ", controls: " << d.control_count()
            << (d.control_count() ? " (" + d.control_interpolation() + ")" : "") << "\n";
  if (!d.normalization().empty()) {
    std::cout << "  normalization (" << (d.normalized() ? "applied" : "stored, not applied") << "):";
    for (int c = 0; c < C; ++c)
      std::cout << " " << d.channel_names()[c] << " mean " << d.normalization().mean[c] << " std "
                << d.normalization().std[c] << (c + 1 < C ? ";" : "");
    std::cout << "\n";
  }
  if (!d.provenance().empty()) std::cout << "  provenance: " << d.provenance() << "\n";
}

void split(const SplitArgs& a) {
  const Dataset d = Dataset::read(a.file);
  const Split s = d.split(a.train, a.validation, a.seed);
  if (s.train.empty()) throw DataError(a.file + ": the training split is empty (--train too small for " +
                                       std::to_string(d.size()) + " series)");
  const Normalization n = d.compute_normalization(s.train);
  const std::string prefix = a.prefix.empty() ? a.file.substr(0, a.file.size() - (a.file.size() > 3 &&
                                                a.file.compare(a.file.size() - 3, 3, ".h5") == 0 ? 3 : 0))
                                              : a.prefix;
  const std::pair<const char*, const std::vector<std::size_t>*> parts[] = {
      {"train", &s.train}, {"validation", &s.validation}, {"test", &s.test}};
  for (const auto& [name, idx] : parts) {
    Dataset part = d.subset(*idx);
    part.set_normalization(n);  // the training statistics, stored (not applied) in every part
    const std::string out = prefix + "_" + name + ".h5";
    part.write(out);
    std::cout << out << ": " << part.size() << " series\n";
  }
}

}  // namespace

void add_data(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Import, export, inspect, split and generate datasets");
  data->require_subcommand(1);

  auto imp = std::make_shared<ImportArgs>();
  CLI::App* ic = data->add_subcommand("import-csv", "CSV (one row per series and time, or wide) to HDF5");
  ic->add_option("file", imp->file, "CSV file")->required();
  ic->add_option("--out,-o", imp->out, "Output HDF5 file")->required();
  ic->add_option("--id", imp->id, "Series id column (omit: the file is one series)");
  ic->add_option("--time", imp->time, "Time column")->capture_default_str();
  ic->add_option("--values", imp->values, "Value columns, comma separated (default: all others)")->delimiter(',');
  ic->add_option("--units", imp->units, "Units, one per channel, comma separated")->delimiter(',');
  ic->add_flag("--wide", imp->wide, "Wide format: one row per time, one column per single-channel series");
  ic->add_option("--channel-name", imp->channel, "Wide format: name of the channel")->capture_default_str();
  ic->add_option("--series-id", imp->series_id, "Id of the series when there is no id column")->capture_default_str();
  ic->callback([imp] {
    CsvImportOptions o;
    o.id_column = imp->id;
    o.time_column = imp->time;
    o.value_columns = imp->values;
    o.units = imp->units;
    o.wide = imp->wide;
    o.channel_name = imp->channel;
    o.single_series_id = imp->series_id;
    const Dataset d = import_csv(imp->file, o);
    d.write(imp->out);
    std::cout << imp->out << ": " << d.size() << " series, " << d.observations() << " observation times, "
              << d.channels() << " channel(s)\n";
  });

  auto exp = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* ec = data->add_subcommand("export-csv", "HDF5 dataset to CSV (id, time, one column per channel)");
  ec->add_option("file", exp->first, "HDF5 dataset")->required();
  ec->add_option("--out,-o", exp->second, "Output CSV file")->required();
  ec->callback([exp] { export_csv(Dataset::read(exp->first), exp->second); });

  auto inf = std::make_shared<std::pair<std::string, bool>>();
  CLI::App* nc = data->add_subcommand("info", "Counts, time ranges, sampling, missing fractions, units");
  nc->add_option("file", inf->first, "HDF5 dataset")->required();
  nc->add_flag("--per-series", inf->second, "One line per series");
  nc->callback([inf] { info(inf->first, inf->second); });

  auto sp = std::make_shared<SplitArgs>();
  CLI::App* sc = data->add_subcommand("split", "Seeded train/validation/test split by series into three files, "
                                               "each storing the training split's normalisation");
  sc->add_option("file", sp->file, "HDF5 dataset")->required();
  sc->add_option("--train", sp->train, "Fraction of series for training")->capture_default_str();
  sc->add_option("--validation", sp->validation, "Fraction for validation (test: the rest)")->capture_default_str();
  sc->add_option("--seed", sp->seed, "Shuffle seed")->capture_default_str();
  sc->add_option("--out-prefix", sp->prefix, "Writes PREFIX_train.h5, PREFIX_validation.h5, PREFIX_test.h5 "
                                             "(default: the input without .h5)");
  sc->callback([sp] { split(*sp); });

  auto gen = std::make_shared<std::pair<GeneratorOptions, std::string>>();
  auto regular = std::make_shared<bool>(false);
  CLI::App* gc = data->add_subcommand("generate", "Synthetic dataset from known dynamics");
  GeneratorOptions& g = gen->first;
  gc->add_option("--system", g.system, "spiral, lotka_volterra, damped_oscillator or robertson")
      ->check(CLI::IsMember(generator_systems()))->capture_default_str();
  gc->add_option("--series", g.series, "Number of series")->capture_default_str();
  gc->add_option("--observations", g.observations, "Observation times per series")->capture_default_str();
  gc->add_option("--grid", g.grid, "Fine grid points the times are drawn from (0: 10 x observations)")->capture_default_str();
  gc->add_flag("--regular", *regular, "Evenly spaced times shared by all series (default: irregular)");
  gc->add_option("--t-end", g.t_end, "Horizon (0: the system's default)")->capture_default_str();
  gc->add_option("--noise", g.noise, "Noise std relative to each channel's RMS")->capture_default_str();
  gc->add_flag("--relative-noise", g.relative_noise, "Noise std relative to each entry's own value (multiplicative)");
  gc->add_option("--t-start", g.t_start, "First time of a logarithmic grid (0: t_end * 1e-8)")->capture_default_str();
  gc->add_option("--missing", g.missing, "Probability an entry is missing")->capture_default_str();
  gc->add_option("--seed", g.seed, "Random seed")->capture_default_str();
  gc->add_option("--out,-o", gen->second, "Output HDF5 file")->required();
  gc->callback([gen, regular] {
    gen->first.irregular = !*regular;
    const Dataset d = generate(gen->first);
    d.write(gen->second);
    std::cout << gen->second << ": " << d.size() << " series, " << d.observations() << " observation times, "
              << d.channels() << " channel(s)\n";
  });
}

}  // namespace cvnode::app
