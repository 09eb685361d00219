// `ruche time`: per-layer forward and backward times of a net on random input, like `caffe time`.
#pragma once

#include <vector>

#include "engine/graph/net.h"
#include "engine/proto/ruche.pb.h"
#include "ops/ops.h"

namespace ruche {

struct TimeRequest {
  proto::NetParameter net;
  NetSource source;
  int batch_size = 64;
  int iterations = 50;
  Shape sample_shape;    // empty: the Input layer's dims
  int num_classes = 10;  // for classifiers whose num_output is 0
  int threads = 0;       // CPU threads; 0: OMP_NUM_THREADS or all cores
  Device device = Device::cpu();
  ops::GpuMath gpu_math;  // --precision, --cudnn-benchmark
};

struct TimeResult {
  std::vector<LayerTiming> layers;  // forward order
  int batch_size = 0, iterations = 0, threads = 0;
  double forward_ms = 0, backward_ms = 0;  // per iteration, the sums over the layers
  double train_flops = 0;  // one forward + backward: 3 x the forward's (Net::forward_flops x 2)
  // The CPU net's memory plan (Net::planned()): activation and gradient bytes in its arena
  // (peak) against one buffer each (naive: all there is without a plan). The layout plan (any
  // device): its layout, the blobs kept in it and the reorders it inserted.
  bool planned = false;
  std::size_t peak_bytes = 0, naive_bytes = 0;
  int blocked_blobs = 0, reorders = 0;
  int folded_batch_norms = 0;  // into convolutions for test-phase forwards
  Layout planned_layout = Layout::plain;
  double images_per_second() const;  // batch / (forward + backward)
};

// Builds the net, initialises it (seed 1), fills its input with standard normal numbers and its
// labels with random classes, and times `iterations` passes after a warm-up (Net::time_layers).
TimeResult time_net(const TimeRequest& request);

}  // namespace ruche
