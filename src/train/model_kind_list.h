// The model kinds `model.kind` names, one line each, in the order error messages list them.
//   CVNODE_MODEL_KIND("name", id): a Model kind that `cvnode fit` and the Trainer build; its own
//     file (src/train/model_kinds/) defines, in namespace cvnode,
//       std::unique_ptr<detail::ModelKind> make_<id>_model(const ModelOptions&, int state, int inputs);
//   CVNODE_MODEL_KIND_ELSEWHERE("name", "command"): a kind of a higher layer that another command
//     fits with its own loop (the config knows its name and options; `cvnode fit` refuses it
//     naming that command).
// A new kind is its file and one line here (src/train/model_kind.h: the interface).
CVNODE_MODEL_KIND("neural_ode", neural_ode)
CVNODE_MODEL_KIND("hybrid", hybrid)
CVNODE_MODEL_KIND_ELSEWHERE("latent_ode", "latent train")
CVNODE_MODEL_KIND_ELSEWHERE("rnn_baseline", "latent train")
