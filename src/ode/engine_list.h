// The registered gradient engines (cvnode/engine.h), one line each: CVNODE_ENGINE("method", id),
// where the engine's own file defines, in namespace cvnode,
//   std::unique_ptr<GradientEngine> make_<id>_engine(const Dynamics&, const SolverOptions&);
//   std::string validate_<id>_options(const SolverOptions&, int state_size);
// The validator checks the options the engine takes and refuses by name the ones of other engine
// families it does not (SolverOptions' shared tolerances are checked before it). A new engine is
// that file and one line here; its method name is then valid for SolverOptions::method and the
// configuration's solver.method.
CVNODE_ENGINE("adams", cvodes_adjoint)
CVNODE_ENGINE("bdf", cvodes_adjoint)
CVNODE_ENGINE("dopri5", dopri5_backprop)
