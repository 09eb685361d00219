// RUN/events.out.tfevents.<unix time>.<host>.<pid>.ruche: TensorBoard's event file, written by rank
// 0 so `tensorboard --logdir RUN` shows live curves. The file is a sequence of TFRecords, each
// holding one serialized Event (engine/proto/tensorboard.proto); the first names the format.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/proto/tensorboard.pb.h"

namespace ruche {

// TFRecord's checksum: crc32c rotated right by 15 bits plus 0xa282ead8 (a crc over bytes that
// hold crcs would otherwise degenerate).
std::uint32_t masked_crc32c(const void* data, std::size_t size);

// One TFRecord: data's length (uint64, little-endian), the masked crc32c of those 8 bytes, the
// data, the masked crc32c of the data.
std::string tfrecord(const std::string& data);

// A histogram of n values in TensorBoard's default bucket layout (edges growing by 10% from
// 1e-12 to 1e20, mirrored for negatives, 0 and +-DBL_MAX at the ends), as TensorFlow encodes it:
// non-empty buckets only, each run of empty ones folded into one zero bucket.
tensorboard::HistogramProto make_histogram(const float* values, std::int64_t n);

class TensorBoardWriter {
 public:
  TensorBoardWriter() = default;  // writes nothing until opened (ranks other than 0 never open it)
  // Creates a new event file in dir and writes its first record (file_version "brain.Event:2").
  void open(const std::string& dir);
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  ~TensorBoardWriter();

  bool is_open() const { return file_ != nullptr; }
  const std::string& path() const { return path_; }

  void add_scalar(const std::string& tag, double value, std::int64_t step);
  void add_histogram(const std::string& tag, const float* values, std::int64_t n,
                     std::int64_t step);
  // png: an encoded PNG image of width x height pixels with `channels` (3 RGB, 4 RGBA).
  void add_image(const std::string& tag, const std::string& png, int width, int height,
                 int channels, std::int64_t step);
  // Hands what was written to the OS, so TensorBoard sees it now (after each log interval).
  void flush();

 private:
  void write(const tensorboard::Event& event);
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace ruche
