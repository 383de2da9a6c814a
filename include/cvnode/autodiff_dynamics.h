// Write a physics term once, as a template over the scalar type, and get a complete Dynamics
// (rhs, dense Jacobian, VJP with respect to z and p, JVP) from Eigen's forward-mode AutoDiff
// (unsupported/Eigen/AutoDiff). Header-only.
//
//   struct Decay2 {  // dz0/dt = -p0 z0 + p1 z1, dz1/dt = -p1 z1
//     template <class T>
//     void operator()(T t, const Eigen::Matrix<T, 2, 1>& z, const Eigen::Matrix<T, 2, 1>& p,
//                     Eigen::Matrix<T, 2, 1>& f) const {
//       f[0] = -p[0] * z[0] + p[1] * z[1];
//       f[1] = -p[1] * z[1];
//     }
//   };
//   cvnode::AutoDiffDynamics<Decay2, 2, 2> physics;
//
// The functor must write every f[i], and should hold intermediate values in variables of type T
// (not `auto`, which may keep an expression referring to a destroyed temporary).
//
// Allocation: with N and P known at compile time every vector, and every derivative vector
// (Eigen::Matrix<double, K, 1> with K = N, N + P or 1), lives on the stack: no call allocates.
// With N or P = Eigen::Dynamic (sizes given to the constructor; the functor then takes
// Eigen::Matrix<T, -1, 1>) the derivative vectors are heap-allocated: several mallocs per call,
// convenient for prototyping, too slow for production. Stack use of the fixed variant is about
// (2N + P)(N + P + 1) doubles per vjp call: keep N + P to a few dozen.
//
// Cost per call: rhs one evaluation in double; jacobian and state-only vjp one evaluation with
// N derivative directions; vjp with parameters N + P directions; jvp one direction. Fine for
// the small state of a physics term; write derivatives by hand (see Robertson in physics.h)
// when it is not.
#pragma once

#include <utility>

// Eigen 3.4's unsupported/Eigen/AutoDiff does not include Eigen/Core itself: Core must come first.
#include <Eigen/Core>
#include <unsupported/Eigen/AutoDiff>

#include "cvnode/dynamics.h"
#include "cvnode/errors.h"

namespace cvnode {

template <class F, int N, int P>
class AutoDiffDynamics final : public Dynamics {
  static constexpr int K = (N == Eigen::Dynamic || P == Eigen::Dynamic) ? Eigen::Dynamic : N + P;
  template <int D>
  using Ad = Eigen::AutoDiffScalar<Eigen::Matrix<double, D, 1>>;
  template <class T>
  using StateT = Eigen::Matrix<T, N, 1>;
  template <class T>
  using ParamT = Eigen::Matrix<T, P, 1>;

 public:
  // n and p are read only for a dynamic N or P; fixed sizes ignore them.
  explicit AutoDiffDynamics(F f = F{}, int n = N, int p = P)
      : f_(std::move(f)), n_(N == Eigen::Dynamic ? n : N), p_(P == Eigen::Dynamic ? p : P) {
    if (n_ < 1 || p_ < 0) throw OptionsError("AutoDiffDynamics needs a state size >= 1 and a parameter size >= 0");
  }

  const F& functor() const { return f_; }
  int state_size() const override { return n_; }
  int param_size() const override { return p_; }
  int workspace_size() const override { return 0; }

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef) const override {
    const StateT<double> zz = z;
    const ParamT<double> pp = theta;
    StateT<double> ff;
    ff.resize(n_);
    f_(t, zz, pp, ff);
    // Element by element: GCC 12 warns (-Warray-bounds, a false positive) on Eigen's vectorised
    // copy of a tiny fixed vector into a Ref.
    for (int i = 0; i < n_; ++i) f[i] = ff[i];
  }

  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef) const override {
    using T = Ad<N>;
    StateT<T> zz, ff;
    ParamT<T> pp;
    zz.resize(n_), ff.resize(n_), pp.resize(p_);
    seed(z, zz, n_, 0);
    constant(theta, pp);
    f_(T(t), zz, pp, ff);
    for (int i = 0; i < n_; ++i) {
      if (ff[i].derivatives().size() == 0) J.row(i).setZero();  // dynamic sizes: f_i was constant
      else J.row(i) = ff[i].derivatives().transpose();
    }
  }

  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv, VectorRef) const override {
    // One direction: z + eps v, so each f_i's single derivative is (J v)_i.
    using T = Ad<1>;
    StateT<T> zz, ff;
    ParamT<T> pp;
    zz.resize(n_), ff.resize(n_), pp.resize(p_);
    for (int i = 0; i < n_; ++i) {
      zz[i].value() = z[i];
      zz[i].derivatives().resize(1);
      zz[i].derivatives()[0] = v[i];
    }
    constant(theta, pp);
    f_(T(t), zz, pp, ff);
    for (int i = 0; i < n_; ++i) Jv[i] = ff[i].derivatives().size() ? ff[i].derivatives()[0] : 0.0;
  }

  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef) const override {
    if (a_dfdtheta.size() == 0) {
      // State part only: N directions, a^T J accumulated row by row.
      using T = Ad<N>;
      StateT<T> zz, ff;
      ParamT<T> pp;
      zz.resize(n_), ff.resize(n_), pp.resize(p_);
      seed(z, zz, n_, 0);
      constant(theta, pp);
      f_(T(t), zz, pp, ff);
      a_dfdz.setZero();
      for (int i = 0; i < n_; ++i)
        if (ff[i].derivatives().size()) a_dfdz += a[i] * ff[i].derivatives();
      return;
    }
    // Derivatives with respect to [z, p] in one pass of N + P directions.
    using T = Ad<K>;
    StateT<T> zz, ff;
    ParamT<T> pp;
    zz.resize(n_), ff.resize(n_), pp.resize(p_);
    seed(z, zz, n_ + p_, 0);
    seed(theta, pp, n_ + p_, n_);
    f_(T(t), zz, pp, ff);
    a_dfdz.setZero();
    a_dfdtheta.setZero();
    for (int i = 0; i < n_; ++i) {
      if (ff[i].derivatives().size() == 0) continue;  // dynamic sizes: f_i was constant
      a_dfdz += a[i] * ff[i].derivatives().head(n_);
      a_dfdtheta += a[i] * ff[i].derivatives().tail(p_);
    }
  }

 private:
  // x[i] becomes the independent variable number first + i of `directions`.
  template <class V, class X>
  static void seed(const V& values, X& x, int directions, int first) {
    for (Eigen::Index i = 0; i < x.size(); ++i) {
      x[i].value() = values[i];
      x[i].derivatives().setZero(directions);
      x[i].derivatives()[first + i] = 1.0;
    }
  }
  // Constants: zero derivatives of the right length (make_coherent fills length 0 for dynamic).
  template <class V, class X>
  static void constant(const V& values, X& x) {
    for (Eigen::Index i = 0; i < x.size(); ++i) x[i] = typename X::Scalar(values[i]);
  }

  F f_;
  int n_, p_;
};

}  // namespace cvnode
