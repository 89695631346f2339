#include "actors/data/idx.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace troupe::data {

namespace {

// The whole file, gunzipped if it is gzip (gzread passes plain files through).
std::vector<std::uint8_t> slurp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw DataError(fmt::format("{}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw DataError(fmt::format("{}: not a regular file", path));
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      std::string why = gzerror(f, &code);
      gzclose(f);
      throw DataError(fmt::format("{}: corrupt compressed data ({})", path, why));
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
    if (out.size() > (std::size_t{1} << 32)) {
      gzclose(f);
      throw DataError(fmt::format("{}: more than 4 GiB once decompressed: not an IDX file troupe reads", path));
    }
  }
  // A gzip stream cut short reads as a short file without an error on some
  // zlib versions: the IDX header's sizes catch that below.
  gzclose(f);
  return out;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  auto raw = slurp(path);
  if (raw.size() < 4) throw DataError(fmt::format("{}: {} bytes is too short for an IDX header", path, raw.size()));
  if (raw[0] != 0 || raw[1] != 0)
    throw DataError(fmt::format("{}: not an IDX file (magic {:02x}{:02x}{:02x}{:02x})", path, raw[0], raw[1], raw[2], raw[3]));
  if (raw[2] != 0x08) throw DataError(fmt::format("{}: element type 0x{:02x}; only unsigned bytes (0x08) are read", path, raw[2]));
  const int ndim = raw[3];
  if (ndim < 1 || ndim > 4) throw DataError(fmt::format("{}: {} dimensions (1 to 4 expected)", path, ndim));
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndim);
  if (raw.size() < header) throw DataError(fmt::format("{}: truncated in its header", path));
  IdxArray a;
  std::size_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    const std::uint8_t* p = raw.data() + 4 + 4 * i;
    const std::int64_t d = (std::int64_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
    a.dims.push_back(d);
    count *= static_cast<std::size_t>(d);
  }
  if (raw.size() != header + count)
    throw DataError(fmt::format("{}: the header says {} bytes of data ({}) but the file holds {}{}", path, count,
                                fmt::join(a.dims, " x "), raw.size() - header,
                                raw.size() < header + count ? " (truncated)" : ""));
  a.bytes.assign(raw.begin() + static_cast<std::ptrdiff_t>(header), raw.end());
  return a;
}

std::string fashion_mnist_dir() {
  if (const char* d = std::getenv("TROUPE_FASHION_MNIST"); d && *d) return d;
  return "/usr/share/datasets/fashion-mnist";
}

namespace {

std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* suffix : {".gz", ""}) {
    std::string p = fmt::format("{}/{}{}", dir, stem, suffix);
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) return p;
  }
  throw DataError(fmt::format("{}/{}.gz: no such file (is dataset-fashion-mnist installed? apt install "
                              "dataset-fashion-mnist, or set TROUPE_FASHION_MNIST to the folder holding it)",
                              dir, stem));
}

}  // namespace

void check_fashion_mnist(const std::string& dir, bool chosen) {
  for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                           "t10k-labels-idx1-ubyte"}) {
    if (!chosen) {
      find_file(dir, stem);
      continue;
    }
    try {
      find_file(dir, stem);
    } catch (const DataError&) {
      throw DataError(fmt::format("the data folder '{}' has no Fashion-MNIST: {}/{}(.gz) is not there", dir, dir,
                                  stem));
    }
  }
}

Dataset load_fashion_mnist(const std::string& dir, Split split, float mean, float std) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::string ipath = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string lpath = find_file(dir, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(ipath);
  IdxArray labels = read_idx(lpath);
  if (images.dims.size() != 3) throw DataError(fmt::format("{}: {} dimensions, images have 3", ipath, images.dims.size()));
  if (labels.dims.size() != 1) throw DataError(fmt::format("{}: {} dimensions, labels have 1", lpath, labels.dims.size()));
  if (images.dims[0] != labels.dims[0])
    throw DataError(fmt::format("{} holds {} images but {} holds {} labels", ipath, images.dims[0], lpath, labels.dims[0]));
  const std::int64_t n = images.dims[0], features = images.dims[1] * images.dims[2];
  Dataset d;
  d.images = Tensor::empty({n, features});
  d.labels = Tensor::empty({n}, compute::DType::i32);
  float* x = d.images.f32();
  const float scale = 1.0f / (255.0f * std), shift = mean / std;
  for (std::size_t i = 0; i < images.bytes.size(); ++i) x[i] = static_cast<float>(images.bytes[i]) * scale - shift;
  std::int32_t* y = d.labels.i32();
  for (std::int64_t i = 0; i < n; ++i) {
    if (labels.bytes[static_cast<std::size_t>(i)] > 9)
      throw DataError(fmt::format("{}: label {} of item {} is not a Fashion-MNIST class (0-9)", lpath,
                                  labels.bytes[static_cast<std::size_t>(i)], i));
    y[i] = labels.bytes[static_cast<std::size_t>(i)];
  }
  return d;
}

}  // namespace troupe::data
