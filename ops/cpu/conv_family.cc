#include "ops/cpu/conv_family.h"

namespace ruche::ops::cpu::conv_family {

void run_forward(const Forward& e, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const memory& xm = e.x.input(x.raw_data());
  const memory& wm = e.w.input(w.raw_data());
  const memory& ym = e.y.output(y.raw_data());
  if (b.defined()) {
    e.b.set_data_handle(b.raw_data());
    e.primitive.run({{DNNL_ARG_SRC, xm.get()},
                     {DNNL_ARG_WEIGHTS, wm.get()},
                     {DNNL_ARG_BIAS, e.b.get()},
                     {DNNL_ARG_DST, ym.get()}});
  } else {
    e.primitive.run(
        {{DNNL_ARG_SRC, xm.get()}, {DNNL_ARG_WEIGHTS, wm.get()}, {DNNL_ARG_DST, ym.get()}});
  }
  e.y.written();
}

void run_backward_data(const BackwardData& e, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const memory& dym = e.dy.input(dy.raw_data());
  const memory& wm = e.w.input(w.raw_data());
  const memory& dxm = e.dx.output(dx.raw_data());
  e.primitive.run({{DNNL_ARG_DIFF_DST, dym.get()},
                   {DNNL_ARG_WEIGHTS, wm.get()},
                   {DNNL_ARG_DIFF_SRC, dxm.get()}});
  e.dx.written();
}

void run_backward_weights(const BackwardWeights& e, const Tensor& x, const Tensor& dy, Tensor& dw,
                          Tensor& db) {
  const memory& xm = e.x.input(x.raw_data());
  const memory& dym = e.dy.input(dy.raw_data());
  const memory& dwm = e.dw.output(dw.raw_data());
  if (db.defined()) {
    e.db.set_data_handle(db.raw_data());
    e.primitive.run({{DNNL_ARG_SRC, xm.get()},
                     {DNNL_ARG_DIFF_DST, dym.get()},
                     {DNNL_ARG_DIFF_WEIGHTS, dwm.get()},
                     {DNNL_ARG_DIFF_BIAS, e.db.get()}});
  } else {
    e.primitive.run({{DNNL_ARG_SRC, xm.get()},
                     {DNNL_ARG_DIFF_DST, dym.get()},
                     {DNNL_ARG_DIFF_WEIGHTS, dwm.get()}});
  }
  e.dw.written();
}

}  // namespace ruche::ops::cpu::conv_family
