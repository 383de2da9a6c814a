#include <cmath>
#include <sstream>

#include "cvnode/latent.h"

namespace cvnode {

namespace {
std::string widths_error(const char* key, const std::vector<int>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] < 1) return std::string(key) + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " must be >= 1";
  return {};
}
}  // namespace

std::string EncoderOptions::validate() const {
  if (kind != "rnn" && kind != "ode_rnn") return "encoder.kind = \"" + kind + "\" (expected rnn or ode_rnn)";
  if (hidden < 1) return "encoder.hidden = " + std::to_string(hidden) + " must be >= 1";
  if (auto e = widths_error("encoder.head_hidden", head_hidden); !e.empty()) return e;
  return widths_error("encoder.ode_hidden", ode_hidden);
}

std::string DecoderOptions::validate(int channels) const {
  if (auto e = widths_error("decoder.hidden", hidden); !e.empty()) return e;
  std::ostringstream o;
  if (noise_std.empty() || (channels > 0 && noise_std.size() != 1 && static_cast<int>(noise_std.size()) != channels))
    o << "decoder.noise_std needs one value or one per channel (" << channels << "), got " << noise_std.size();
  for (std::size_t i = 0; o.str().empty() && i < noise_std.size(); ++i)
    if (!(noise_std[i] > 0) || !std::isfinite(noise_std[i]))
      o << "decoder.noise_std[" << i << "] = " << noise_std[i] << " must be finite and > 0";
  return o.str();
}

std::string LatentOptions::validate(int channels) const {
  if (latent_dim < 1) return "model.latent_dim = " + std::to_string(latent_dim) + " must be >= 1";
  if (samples < 1) return "loss.samples = " + std::to_string(samples) + " must be >= 1";
  if (kl_warmup_epochs < 0) return "loss.kl_warmup_epochs = " + std::to_string(kl_warmup_epochs) + " must be >= 0";
  if (auto e = widths_error("loss.intensity_hidden", intensity_hidden); !e.empty()) return e;
  if (auto e = encoder.validate(); !e.empty()) return e;
  return decoder.validate(channels);
}

}  // namespace cvnode
