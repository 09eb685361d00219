// Layer fusion for CPU nets (issue 24): a ReLU written in place on the output of a layer that can
// apply it in its own pass (Convolution: a oneDNN post-op; BatchNorm: fuse_norm_relu) runs there,
// when nothing else reads that output. The ReLU layer's forward is then empty; its backward, which
// reads the output, is unchanged. Not on the reference path (RUCHE_CPU_REFERENCE=1) or a GPU.
#pragma once

#include <memory>
#include <vector>

#include "engine/layers/layer.h"
#include "engine/proto/ruche.pb.h"

namespace ruche {

// bottoms[l] / tops[l]: the blob indices layer l reads and writes (new versions for in-place
// tops). Returns how many ReLUs were fused.
int fuse_relus(const proto::NetParameter& param, std::vector<std::unique_ptr<Layer>>& layers,
               const std::vector<std::vector<int>>& bottoms,
               const std::vector<std::vector<int>>& tops);

// Inference folding: a BatchNorm that alone reads a Convolution's only top runs inside the
// convolution's test-phase forwards, its scale and shift folded into the weights (the ONNX export
// folds the same way). The convolution's own top is then not written in test phase, so nets whose
// every blob is read (`ruche visualize`) do not fold. io[l]: layer l's tensors, bound. Returns
// how many batch norms were folded.
int fold_batch_norms(std::vector<std::unique_ptr<Layer>>& layers, const std::vector<LayerIO>& io,
                     const std::vector<std::vector<int>>& bottoms,
                     const std::vector<std::vector<int>>& tops);

}  // namespace ruche
