#include "engine/train/time_run.h"

#include "engine/train/task.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/rng/fill.h"
#include "engine/tensor/allocator.h"
#include "ops/ops.h"

namespace ruche {

double TimeResult::images_per_second() const {
  const double ms = forward_ms + backward_ms;
  return ms > 0 ? 1000.0 * batch_size / ms : 0;
}

TimeResult time_net(const TimeRequest& request) {
  RUCHE_REQUIRE(request.batch_size > 0)
      << "--batch-size " << request.batch_size << ": expected a positive number";
  RUCHE_REQUIRE(request.iterations > 0)
      << "--iterations " << request.iterations << ": expected a positive number";
  RUCHE_REQUIRE(request.num_classes > 0)
      << "--classes " << request.num_classes << ": expected a positive number";
  ops::set_num_threads(request.threads);
  use_device(request.device);
  ops::set_gpu_math(request.gpu_math);
  NetOptions options;
  options.device = request.device;
  options.batch_size = request.batch_size;
  options.sample_shape = request.sample_shape;
  options.num_classes = request.num_classes;
  options.source = request.source;
  if (is_float_target_loss(loss_type(request.net))) {  // the prediction's shape (regression, AE)
    options.target_shape = float_target_shape(request.net, options);
  }
  std::unique_ptr<Net> net = Net::build(request.net, options);
  net->init_params(1);

  // Made on the host, then copied to the net's device.
  Tensor input = Tensor::empty(net->input().shape(), net->input().dtype());
  fill_normal(input, 0.0f, 1.0f, RngStream{1, RngPurpose::synthetic, 0, 0, 0});
  net->input().copy_from(input);
  // A net whose Input has one top reads no labels (its loss compares with another blob).
  if (net->labels().defined()) {
    Tensor labels = Tensor::empty(net->labels().shape(), net->labels().dtype());
    if (labels.dtype() == DType::i32) {
      // Random classes within the classifier's width.
      const Tensor& out = net->output();
      const int classes = out.ndim() == 2 ? static_cast<int>(out.size(1)) : request.num_classes;
      Tensor u = Tensor::empty(labels.shape());
      fill_uniform(u, 0.0f, static_cast<float>(classes),
                   RngStream{1, RngPurpose::synthetic, 0, 0, 1});
      for (std::int64_t i = 0; i < labels.numel(); ++i) {
        labels.data<std::int32_t>()[i] =
            std::min(static_cast<int>(u.data<float>()[i]), classes - 1);
      }
    } else {
      fill_normal(labels, 0.0f, 1.0f, RngStream{1, RngPurpose::synthetic, 0, 0, 1});
    }
    net->labels().copy_from(labels);
  }

  StepContext ctx;
  ctx.phase = Phase::train;
  TimeResult result;
  result.layers = net->time_layers(request.iterations, ctx);
  result.batch_size = request.batch_size;
  result.iterations = request.iterations;
  result.threads = ops::num_threads();
  result.train_flops = 6.0 * net->forward_flops();  // multiply-adds x 2, forward x 3
  result.planned = net->planned();
  result.naive_bytes = net->planned() ? net->memory_plan().naive : net->activation_bytes();
  result.peak_bytes = net->planned() ? net->memory_plan().peak : result.naive_bytes;
  result.blocked_blobs = net->blocked_blobs();
  result.reorders = net->planned_reorders();
  result.folded_batch_norms = net->folded_batch_norms();
  result.planned_layout = net->planned_layout();
  for (const LayerTiming& t : result.layers) {
    result.forward_ms += t.forward_ms;
    result.backward_ms += t.backward_ms;
  }
  return result;
}

}  // namespace ruche
