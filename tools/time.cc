// ruche time: per-layer forward and backward times on random input, like `caffe time`.
#include <cstdio>
#include <string>

#include "engine/train/time_run.h"
#include "tools/commands.h"
#include "tools/flags.h"

namespace ruche::tools {
namespace {

void print_timings(const TimeResult& r) {
  std::printf("%-24s %-18s %12s %12s\n", "layer", "type", "forward ms", "backward ms");
  for (const LayerTiming& t : r.layers) {
    if (t.has_backward) {
      std::printf("%-24s %-18s %12.4f %12.4f\n", t.name.c_str(), t.type.c_str(), t.forward_ms,
                  t.backward_ms);
    } else {
      std::printf("%-24s %-18s %12.4f %12s\n", t.name.c_str(), t.type.c_str(), t.forward_ms, "-");
    }
  }
  std::printf("\naverage forward pass:  %10.4f ms\n", r.forward_ms);
  std::printf("average backward pass: %10.4f ms\n", r.backward_ms);
  std::printf("average forward-backward: %7.4f ms  (%d iterations, batch %d, %d threads)\n",
              r.forward_ms + r.backward_ms, r.iterations, r.batch_size, r.threads);
  std::printf("throughput: %.1f images/s\n", r.images_per_second());
  std::printf("compute: %.3f GFLOP per forward-backward (3 x forward), %.1f GFLOP/s\n",
              r.train_flops / 1e9, r.train_flops / (r.forward_ms + r.backward_ms) / 1e6);
  const double mib = 1 << 20;
  if (r.planned) {
    std::printf(
        "memory plan: activations and gradients in %.1f MiB (naive sum %.1f MiB); %d batch norms "
        "folded into convolutions for inference\n",
        static_cast<double>(r.peak_bytes) / mib, static_cast<double>(r.naive_bytes) / mib,
        r.folded_batch_norms);
  } else {
    std::printf(
        "memory plan: none (a GPU, or RUCHE_CPU_REFERENCE=1): activations and gradients "
        "%.1f MiB\n",
        static_cast<double>(r.naive_bytes) / mib);
  }
  if (r.planned_layout == Layout::plain) {
    std::printf("layout plan: none, every blob plain (NCHW)\n");
  } else {
    std::printf("layout plan: %d blobs %s, %d reorders between layouts\n", r.blocked_blobs,
                std::string(layout_name(r.planned_layout)).c_str(), r.reorders);
  }
}

}  // namespace

void add_time_command(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model, net, input;
    int batch_size = 64, iterations = 50, threads = 0, classes = 10;
    DeviceFlags device;
  };
  static Options o;
  CLI::App* cmd = app.add_subcommand("time", "Per-layer forward/backward times on random input");
  cmd->add_option("--model", o.model, "a built-in model");
  cmd->add_option("--net", o.net, "net.prototxt (instead of --model)");
  cmd->add_option("--batch-size", o.batch_size, "images per pass")->capture_default_str();
  cmd->add_option("--iterations", o.iterations, "timed passes (after one warm-up)")
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads (0: OMP_NUM_THREADS or all cores)");
  cmd->add_option("--input", o.input, "one input sample C,H,W (default: the model's)");
  cmd->add_option("--classes", o.classes, "classifier width where the net leaves it open")
      ->capture_default_str();
  o.device.add_to(cmd);
  cmd->callback([&exit_code] {
    TimeRequest request;
    request.sample_shape = parse_shape_flag("--input", o.input);
    request.net = net_from_flags(o.model, o.net, request.sample_shape, 0, &request.source);
    request.batch_size = o.batch_size;
    request.iterations = o.iterations;
    request.threads = o.threads;
    request.num_classes = o.classes;
    request.device = o.device.resolve();
    request.gpu_math = o.device.gpu_math();
    const TimeResult r = time_net(request);
    std::printf("timing %s on random input on %s\n", request.source.file.c_str(),
                request.device.str().c_str());
    print_timings(r);
    exit_code = 0;
  });
}

}  // namespace ruche::tools
