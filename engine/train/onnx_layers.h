// Each ruche layer that computes as ONNX nodes, for `ruche export --format onnx`
// (engine/train/onnx_export.h), and the batch norms folded into the convolution before them. The
// Input layer, the losses and the model's outputs are the model's (onnx_export.cc). Internal to
// the ONNX export.
#pragma once

#include <functional>
#include <map>
#include <set>

#include "engine/graph/net.h"
#include "engine/proto/ruche.pb.h"
#include "engine/train/onnx_graph.h"

namespace ruche::onnx_detail {

// The batch norms folded into the convolution before them: those whose input is a convolution's
// output read by nothing else (none when `fold` is false, --no-fold-bn).
class BatchNormFolds {
 public:
  BatchNormFolds(const proto::NetParameter& net, bool fold);
  // The batch norm folded into the convolution at layer index `conv`, or null.
  const proto::LayerParameter* into(int conv) const;
  // Whether the batch norm at layer index `bn` is folded (its convolution already normalised).
  bool folded(int bn) const { return folded_.count(bn) != 0; }

 private:
  std::map<int, const proto::LayerParameter*> into_;  // convolution -> its batch norm
  std::set<int> folded_;                              // batch norms in their convolution
};

// Adds the nodes of `layer`, the net's layer at `index` (g.begin_layer(layer) called). Dropout and
// a folded batch norm pass their input on; a layer ONNX cannot express is a ruche::Error naming
// it. `one_sample_net` gives the net built for one sample, for the layers that need a blob's rank.
void add_layer(GraphBuilder& g, const proto::LayerParameter& layer, int index,
               const BatchNormFolds& folds, const std::function<const Net&()>& one_sample_net);

}  // namespace ruche::onnx_detail
