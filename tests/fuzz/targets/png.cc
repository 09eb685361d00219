// PNG decoding (WebDataset .png members, ImageFolder).
#include "engine/data/png.h"
#include "tests/fuzz/fuzz_target.h"

RUCHE_FUZZ_TARGET(png) {
  if (!ruche::is_png(data, size)) return;
  ruche::decode_png_rgb(data, size, "fuzz.png");
}
