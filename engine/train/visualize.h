// `ruche visualize`: inside a trained net. The first convolution's filters, every convolution's
// output for one sample, and class-saliency maps (Simonyan et al. 2014: the gradient of the
// class score, the logit before softmax, with respect to the input) for a few samples of each
// class. Inputs are normalised exactly as the run did: its RUN/preprocess.json, through
// open_normalized_splits, nothing recomputed.
#pragma once

#include <string>
#include <vector>

#include "engine/data/open.h"
#include "engine/graph/net.h"
#include "engine/tensor/tensor.h"

namespace ruche {

struct VisualizeRequest {
  std::string run;      // the run directory (net.prototxt, solver.prototxt, preprocess.json)
  std::string weights;  // "": RUN/best.npz when it exists, else RUN/model.npz
  DataSpec data;        // what the run trained on (--data)
  int samples = 2;      // saliency samples per class
  int threads = 0;
};

struct Visualization {
  std::string weights;
  std::vector<std::string> class_names;
  std::string split;       // where the samples come from: val, else test, else train
  std::string first_conv;  // the first Convolution layer's name; "" when the net has none
  Tensor filters;          // its weight [O, C/groups, kh, kw]
  std::vector<std::string> conv_layers;  // every Convolution, in forward order
  std::vector<Tensor> activations;       // each one's output for `sample` [C, H, W]
  std::int32_t sample_label = 0, sample_predicted = 0;
  Tensor inputs;    // the saliency samples as the net reads them (normalised) [n, sample...]
  Tensor saliency;  // d score[label] / d input, [n, sample...]
  std::vector<std::int32_t> labels, predicted;
};

Visualization visualize_run(const VisualizeRequest& request);

// For each row of `inputs` (normalised, the net's sample shape): the gradient of the logit of
// class classes[i] with respect to it, in test phase (batch norm's running statistics and
// dropout's identity, as PyTorch's eval mode); `predicted` gets each row's argmax. `net` must be
// built with batch 1 and NetOptions::input_grad.
Tensor class_saliency(Net& net, const Tensor& inputs, const std::vector<std::int32_t>& classes,
                      std::vector<std::int32_t>* predicted);

}  // namespace ruche
