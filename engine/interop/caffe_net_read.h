// Caffe's net files read as V2 (engine/interop/caffe_import.proto): a prototxt or a binary
// .caffemodel, V1 nets (`layers { type: CONVOLUTION }`) upgraded to V2 layers as Caffe's own
// upgrade does, and the layers of the training net picked by Caffe's include/exclude rules.
#pragma once

#include <string>
#include <vector>

#include "engine/interop/caffe_import.pb.h"

namespace ruche {

// A net prototxt (V1 or V2); a V0 net is a one-line error naming `where`.
caffe_import::NetParameter read_caffe_net_text(const std::string& text, const std::string& where);
// A binary .caffemodel (V1 or V2).
caffe_import::NetParameter read_caffe_net_binary(const std::string& bytes,
                                                 const std::string& where);

// Caffe's training state: phase TRAIN, with the level and stages the file's `state` gives.
caffe_import::NetState caffe_train_state(const caffe_import::NetParameter& net);
// Whether the layer is in a net of this state (Caffe's NetStateRule: phase, min/max level,
// stage, not_stage; any include rule met, or no exclude rule met).
bool caffe_layer_in_state(const caffe_import::LayerParameter& layer,
                          const caffe_import::NetState& state, const std::string& where);

}  // namespace ruche
