// RAII owners for SUNDIALS handles and Eigen views over N_Vector memory. The only header
// besides solver.cpp that includes SUNDIALS; nothing public depends on it.
#pragma once

#include <memory>
#include <type_traits>

#include <Eigen/Core>
#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sundials/sundials_linearsolver.h>
#include <sundials/sundials_matrix.h>
#include <sundials/sundials_nonlinearsolver.h>
#include <sunmatrix/sunmatrix_dense.h>

namespace cvnode::detail {

class Context {
 public:
  Context();
  ~Context() { SUNContext_Free(&ctx_); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  operator SUNContext() const { return ctx_; }

 private:
  SUNContext ctx_ = nullptr;
};

struct NVectorFree { void operator()(N_Vector v) const { N_VDestroy(v); } };
struct MatrixFree { void operator()(SUNMatrix m) const { SUNMatDestroy(m); } };
struct LinSolFree { void operator()(SUNLinearSolver s) const { SUNLinSolFree(s); } };
struct NonlinSolFree { void operator()(SUNNonlinearSolver s) const { SUNNonlinSolFree(s); } };
struct CvodeFree { void operator()(void* mem) const { CVodeFree(&mem); } };

using NVectorPtr = std::unique_ptr<std::remove_pointer_t<N_Vector>, NVectorFree>;
using MatrixPtr = std::unique_ptr<std::remove_pointer_t<SUNMatrix>, MatrixFree>;
using LinSolPtr = std::unique_ptr<std::remove_pointer_t<SUNLinearSolver>, LinSolFree>;
using NonlinSolPtr = std::unique_ptr<std::remove_pointer_t<SUNNonlinearSolver>, NonlinSolFree>;
using CvodeMemPtr = std::unique_ptr<void, CvodeFree>;

NVectorPtr make_vector(sunindextype n, SUNContext ctx);  // zero-filled

inline Eigen::Map<Eigen::VectorXd> view(N_Vector v) {
  return {N_VGetArrayPointer(v), static_cast<Eigen::Index>(N_VGetLength(v))};
}
inline Eigen::Map<Eigen::MatrixXd> view(SUNMatrix m) {
  // SUNDenseMatrix data is column-major with leading dimension rows.
  return {SM_DATA_D(m), static_cast<Eigen::Index>(SM_ROWS_D(m)),
          static_cast<Eigen::Index>(SM_COLUMNS_D(m))};
}

// CVODES' name of a return flag ("CV_TOO_MUCH_WORK").
std::string flag_name(int flag);

}  // namespace cvnode::detail
