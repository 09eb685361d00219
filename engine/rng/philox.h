// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11). A number is a pure function
// of (seed, purpose, epoch, index, layer, position), so threads, ranks, devices and resumes all
// see the same values without carrying generator state. Header-only so CUDA kernels share it.
#pragma once

#include <cmath>
#include <cstdint>

#include "engine/host_device.h"

namespace ruche {

// What a stream of random numbers is for; part of the key, so streams never overlap.
enum class RngPurpose : std::uint32_t {
  init = 1,       // parameter initialisation
  dropout = 2,    // dropout masks
  augment = 3,    // data augmentation
  sampler = 4,    // the epoch's permutation
  synthetic = 5,  // synthetic data
  test = 6,       // tests
};

// One stream of numbers; position i within it is the i-th number drawn.
struct RngStream {
  std::uint64_t seed = 0;
  RngPurpose purpose = RngPurpose::test;
  std::uint32_t epoch = 0;
  std::uint32_t index = 0;  // step, or global sample index
  std::uint32_t layer = 0;  // parameter or layer number (24 bits)
};

struct Philox4 {
  std::uint32_t v[4];
};

RUCHE_HOST_DEVICE inline std::uint32_t mulhilo(std::uint32_t a, std::uint32_t b,
                                               std::uint32_t* hi) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

// Philox4x32 with 10 rounds on counter c and key k.
RUCHE_HOST_DEVICE inline Philox4 philox4x32_10(Philox4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = mulhilo(kMul0, c.v[0], &hi0);
    const std::uint32_t lo1 = mulhilo(kMul1, c.v[2], &hi1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c;
}

// The four 32-bit words of block `block` of the stream (positions 4*block .. 4*block+3).
RUCHE_HOST_DEVICE inline Philox4 rng_block(const RngStream& s, std::uint32_t block) {
  const Philox4 counter{{block, s.index, s.epoch,
                         (static_cast<std::uint32_t>(s.purpose) << 24) | (s.layer & 0xFFFFFFu)}};
  return philox4x32_10(counter, static_cast<std::uint32_t>(s.seed),
                       static_cast<std::uint32_t>(s.seed >> 32));
}

// The 32-bit word at `position` of the stream.
RUCHE_HOST_DEVICE inline std::uint32_t rng_bits(const RngStream& s, std::uint64_t position) {
  return rng_block(s, static_cast<std::uint32_t>(position >> 2)).v[position & 3];
}

// 24 random bits to a float in [0, 1), exactly representable.
RUCHE_HOST_DEVICE inline float bits_to_uniform(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// The uniform in [0, 1) at `position`.
RUCHE_HOST_DEVICE inline float rng_uniform(const RngStream& s, std::uint64_t position) {
  return bits_to_uniform(rng_bits(s, position));
}

// A standard normal at `position`, Box-Muller from positions 2p and 2p+1 of the stream.
RUCHE_HOST_DEVICE inline float rng_normal(const RngStream& s, std::uint64_t position) {
  const Philox4 b = rng_block(s, static_cast<std::uint32_t>(position >> 1));
  const int half = static_cast<int>(position & 1) * 2;
  // 1 - u keeps the logarithm's argument in (0, 1].
  const float u1 = 1.0f - bits_to_uniform(b.v[half]);
  const float u2 = bits_to_uniform(b.v[half + 1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864769f * u2);
}

}  // namespace ruche
