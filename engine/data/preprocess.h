// The run's input record (proto::Preprocess, engine/proto/ruche.proto): how the values a user has
// (pixels 0-255, or an npz's stored floats) become what the net reads. A run chooses it once
// (--normalize, or a record beside --net), writes it to RUN/preprocess.json and into every
// checkpoint; the loaders, `ruche eval` and `ruche export` apply it, so a deployed model decides
// exactly as it was evaluated.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/image_pipeline.h"
#include "engine/data/transform.h"
#include "engine/proto/ruche.pb.h"

namespace ruche {

inline constexpr const char* kPreprocessFile = "preprocess.json";

// --normalize: auto (fixed statistics for the named data sets, else computed from the training
// split), none, or M1,M2,M3/S1,S2,S3 (one mean and one std per channel, in [0, 1] units for
// pixels).
struct NormalizeChoice {
  enum class Mode { automatic, none, given };
  Mode mode = Mode::automatic;
  std::vector<float> mean, std;
};
// Throws a one-line ruche::Error naming the flag for anything else.
NormalizeChoice parse_normalize_flag(const std::string& text);

// Where a run's normalisation comes from: a record (beside --net as an import writes it, or beside
// weights being evaluated), else --normalize.
struct PreprocessSource {
  NormalizeChoice normalize;
  std::optional<proto::Preprocess> record;
  std::string record_dir;  // the folder of the record (its mean image is there)
  std::string record_path() const;
  // DIR/preprocess.json as the record when it exists.
  static PreprocessSource in_dir(const std::string& dir);
};

// What a data source gives, for the record: its kind, whether its values are pixels (read() scales
// them by 1/255) or stored values, the sample shape and the class names.
struct InputFacts {
  std::string source;  // Dataset::kind(), or "shards"
  bool pixels = true;
  Shape sample_shape;
  std::vector<std::string> class_names;
};
InputFacts input_facts(const Dataset& train);

// The record of a run over `facts` with `norm` (what the loader applies to read()'s values).
proto::Preprocess make_preprocess(const InputFacts& facts, const Normalization& norm);

// The normalisation `choice` asks for: auto is default_normalization(train) (null train: JPEG
// sources, ImageNet's statistics), none is nothing, given is checked against the channel count.
Normalization choose_normalization(const NormalizeChoice& choice, const InputFacts& facts,
                                   const Dataset* train);

// What the loader must do to read()'s values to follow `record` (found in `record_dir`, where its
// mean_image lives): rescale (the record's scale over the source's own), channel order, mean
// image, mean and std. A record that does not fit the data (sample shape, pixels against values,
// channel count) is a ruche::Error naming `where` and both sides.
Normalization normalization_of(const proto::Preprocess& record, const std::string& record_dir,
                               const InputFacts& facts, const std::string& where);

// `norm` applied while decoding JPEGs (ImageFolder, shards), which normalise as they decode: a
// mean image is a ruche::Error naming `where` (JPEG crops vary; give per-channel statistics).
void apply_to_decoder(const Normalization& norm, ImageTransformOptions& options,
                      const std::string& where);

// The record as RUN/preprocess.json holds it (Protobuf's JSON, field names as in the .proto), and
// back; a parse error names `where`.
std::string preprocess_json(const proto::Preprocess& record);
proto::Preprocess parse_preprocess(const std::string& json, const std::string& where);
// DIR/preprocess.json when it exists (DIR: a run directory, or the folder of a --net file).
std::optional<proto::Preprocess> read_preprocess_in(const std::string& dir);

// Writes RUN/preprocess.json (durably) and, when the record names a mean image, copies it from
// `from_dir` (the folder of the record it came from) beside it.
void write_preprocess(const std::string& run_dir, const proto::Preprocess& record,
                      const std::string& from_dir);

// One line for the start of a run: "pixels / 255, mean 0.286 std 0.353, gray 1x28x28".
std::string describe_preprocess(const proto::Preprocess& record);

}  // namespace ruche
