#include "cvnode/classifier/idx.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include <zlib.h>

#include "cvnode/errors.h"

namespace cvnode {

namespace {

// The whole content of a file, gunzipped if it is gzip data (gzread passes plain files through).
std::vector<std::uint8_t> read_bytes(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw DataError(path + ": no such file");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw DataError(path + ": cannot open");
  gzbuffer(f.get(), 1 << 17);
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    const int got = gzread(f.get(), buf, sizeof buf);
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      throw DataError(path + ": corrupt compressed data (" + std::string(msg ? msg : "zlib error") + ")");
    }
    if (got == 0) break;
    out.insert(out.end(), buf, buf + got);
  }
  // gzread stops quietly at a truncated gzip member; gzerror tells.
  int code = 0;
  gzerror(f.get(), &code);
  if (code != Z_OK) throw DataError(path + ": corrupt or truncated compressed data");
  return out;
}

std::uint32_t big_endian(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) | (std::uint32_t{b[at + 2]} << 8) |
         std::uint32_t{b[at + 3]};
}

// Checks the IDX header (unsigned bytes, `dims` dimensions) and returns the dimensions.
std::vector<std::uint32_t> idx_header(const std::vector<std::uint8_t>& b, int dims, const std::string& path) {
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(dims);
  if (b.size() < header) throw DataError(path + ": too short for an IDX header (" + std::to_string(b.size()) + " bytes)");
  const std::uint32_t magic = big_endian(b, 0);
  const std::uint32_t want = 0x0800u + static_cast<std::uint32_t>(dims);  // type 0x08 = unsigned byte
  if (magic != want)
    throw DataError(path + ": magic number " + std::to_string(magic) + ", expected " + std::to_string(want) +
                    " (IDX unsigned bytes with " + std::to_string(dims) + " dimension" + (dims > 1 ? "s" : "") + ")");
  std::vector<std::uint32_t> d(dims);
  std::size_t total = 1;
  for (int i = 0; i < dims; ++i) {
    d[i] = big_endian(b, 4 + 4 * static_cast<std::size_t>(i));
    total *= d[i];
  }
  if (b.size() != header + total)
    throw DataError(path + ": " + std::to_string(b.size() - header) + " data bytes, the header announces " +
                    std::to_string(total));
  return d;
}

}  // namespace

ImageSet ImageSet::head(int count) const {
  if (count <= 0 || count >= size()) return *this;
  ImageSet out;
  out.rows = rows;
  out.cols = cols;
  out.classes = classes;
  out.pixels.assign(pixels.begin(), pixels.begin() + static_cast<std::ptrdiff_t>(count) * rows * cols);
  out.labels.assign(labels.begin(), labels.begin() + count);
  return out;
}

ImageSet read_idx(const std::string& images_path, const std::string& labels_path) {
  std::vector<std::uint8_t> img = read_bytes(images_path), lab = read_bytes(labels_path);
  const auto di = idx_header(img, 3, images_path);
  const auto dl = idx_header(lab, 1, labels_path);
  if (di[0] != dl[0])
    throw DataError(images_path + " holds " + std::to_string(di[0]) + " images but " + labels_path + " " +
                    std::to_string(dl[0]) + " labels");
  if (di[1] == 0 || di[2] == 0) throw DataError(images_path + ": images of size 0");
  ImageSet s;
  s.rows = static_cast<int>(di[1]);
  s.cols = static_cast<int>(di[2]);
  s.pixels.assign(img.begin() + 16, img.end());
  s.labels.assign(lab.begin() + 8, lab.end());
  for (std::size_t i = 0; i < s.labels.size(); ++i)
    if (s.labels[i] > 99)
      throw DataError(labels_path + ": label " + std::to_string(s.labels[i]) + " of item " + std::to_string(i) +
                      " is not a class index");
  s.classes = s.labels.empty() ? 0 : 1 + *std::max_element(s.labels.begin(), s.labels.end());
  return s;
}

ImageSet load_fashion_mnist(const std::string& split, const std::string& dir) {
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "test") prefix = "t10k";
  else throw OptionsError("Fashion-MNIST split '" + split + "': expected train or test");
  const std::string images = dir + "/" + prefix + "-images-idx3-ubyte.gz", labels = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  for (const std::string& p : {images, labels})
    if (!std::filesystem::is_regular_file(p))
      throw DataError("Fashion-MNIST is not installed: " + p +
                      " is missing (install the Debian package dataset-fashion-mnist, e.g. with scripts/setup.sh)");
  ImageSet s = read_idx(images, labels);
  s.classes = std::max(s.classes, 10);
  return s;
}

}  // namespace cvnode
