// The registered losses (cvnode/loss.h), one line each: CVNODE_LOSS("name", factory), where
// factory is a function of namespace cvnode defined in the loss's own file,
//   std::shared_ptr<const Loss> factory(const LossSpec& spec, std::shared_ptr<const ObservationMap> map);
// A new loss is that file and one line here; its name is then valid for make_loss and the
// configuration's loss.kind.
CVNODE_LOSS("half_sse", make_half_sse_loss)
CVNODE_LOSS("mse_mean", make_mse_mean_loss)
CVNODE_LOSS("l1_mean", make_l1_mean_loss)
CVNODE_LOSS("gaussian_nll", make_gaussian_nll_loss)
CVNODE_LOSS("huber_mean", make_huber_mean_loss)
