// Image classification data in the IDX format of MNIST and Fashion-MNIST (LeCun's format: a
// big-endian header of magic number and dimensions, then unsigned bytes), plain or gzip
// compressed, and the Fashion-MNIST files that Debian's dataset-fashion-mnist package installs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cvnode {

// Where dataset-fashion-mnist puts the four .gz files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Labelled grey-scale images, one byte a pixel, row-major, image after image.
struct ImageSet {
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // size() * rows * cols
  std::vector<std::uint8_t> labels;  // one per image
  int classes = 0;                   // 1 + the largest label

  int size() const { return static_cast<int>(labels.size()); }
  int pixels_per_image() const { return rows * cols; }
  // The first `count` images (all if count <= 0 or >= size()).
  ImageSet head(int count) const;
};

// Reads an IDX3 image file and its IDX1 label file (each plain or gzip compressed, recognised by
// the gzip magic bytes). Throws DataError naming the file and what is wrong with it: missing,
// truncated, a wrong magic number, or counts that do not match.
ImageSet read_idx(const std::string& images_path, const std::string& labels_path);

// Fashion-MNIST's "train" (60,000 images) or "test" (10,000) split from `dir`. When the files are
// absent the DataError says to install the Debian package dataset-fashion-mnist.
ImageSet load_fashion_mnist(const std::string& split, const std::string& dir = kFashionMnistDir);

}  // namespace cvnode
