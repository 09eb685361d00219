// jpeg_to_sample: decode, crop and resample, flip, normalise.
#include "engine/data/image_pipeline.h"

#include "engine/error.h"

namespace ruche {

void jpeg_to_sample(const std::uint8_t*, std::size_t, const std::string& what, bool,
                    const ImageTransformOptions&, const RngStream&, float*) {
  RUCHE_FAIL() << what << ": JPEG decoding is not implemented yet";
}

}  // namespace ruche
