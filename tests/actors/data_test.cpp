#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "actors/data/idx.hpp"
#include "actors/data/sampler.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("troupe-data-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

std::string idx_bytes(std::vector<std::uint32_t> dims, std::size_t data) {
  std::string s{0, 0, 8, static_cast<char>(dims.size())};
  for (auto d : dims)
    for (int k = 3; k >= 0; --k) s += static_cast<char>((d >> (8 * k)) & 0xff);
  for (std::size_t i = 0; i < data; ++i) s += static_cast<char>(i % 10);
  return s;
}

void write_file(const fs::path& p, const std::string& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(p, std::ios::binary) << bytes;
  }
}

}  // namespace

TEST_CASE("IDX files: read gzipped or raw; bad ones are refused naming the path", "[data]") {
  TempDir d;
  write_file(d.path / "ok.gz", idx_bytes({3, 2, 2}, 12), true);
  write_file(d.path / "raw", idx_bytes({4}, 4), false);
  auto a = data::read_idx((d.path / "ok.gz").string());
  CHECK(a.dims == std::vector<std::int64_t>{3, 2, 2});
  CHECK(a.bytes.size() == 12);
  CHECK(data::read_idx((d.path / "raw").string()).bytes[3] == 3);

  write_file(d.path / "short.gz", idx_bytes({3, 2, 2}, 11), true);
  CHECK_THROWS_WITH(data::read_idx((d.path / "short.gz").string()),
                    Catch::Contains("short.gz") && Catch::Contains("truncated"));
  write_file(d.path / "magic", "PK\x03\x04junk", false);
  CHECK_THROWS_WITH(data::read_idx((d.path / "magic").string()), Catch::Contains("not an IDX file"));
  // A gzip file whose compressed bytes were damaged.
  std::string gz;
  {
    std::ifstream in(d.path / "ok.gz", std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), {});
  }
  gz[gz.size() / 2] ^= 0x5a;
  gz.resize(gz.size() - 6);
  write_file(d.path / "bad.gz", gz, false);
  CHECK_THROWS_AS(data::read_idx((d.path / "bad.gz").string()), data::DataError);
  CHECK_THROWS_WITH(data::read_idx((d.path / "missing").string()),
                    Catch::Contains("missing") && Catch::Contains("No such file"));
  CHECK_THROWS_WITH(data::load_fashion_mnist(d.path.string(), data::Split::train),
                    Catch::Contains("train-images-idx3-ubyte.gz: no such file") && Catch::Contains("dataset-fashion-mnist"));
}

TEST_CASE("Fashion-MNIST from Debian's package: 60000 + 10000 normalised images", "[data]") {
  const auto dir = data::fashion_mnist_dir();
  if (!fs::exists(fs::path(dir) / "t10k-images-idx3-ubyte.gz")) FAIL("no Fashion-MNIST at " << dir << ": apt install dataset-fashion-mnist");
  auto test = data::load_fashion_mnist(dir, data::Split::test);
  CHECK(test.size() == 10000);
  CHECK(test.features() == 784);
  auto x = test.images.to_vector();
  double mean = 0;
  for (float v : x) mean += v;
  mean /= x.size();
  CHECK(std::abs(mean) < 0.05);  // the training statistics normalise the test set near 0
  std::vector<int> per_class(10);
  const std::int32_t* y = test.labels.i32();
  for (std::int64_t i = 0; i < test.size(); ++i) ++per_class[static_cast<std::size_t>(y[i])];
  for (int c : per_class) CHECK(c == 1000);
}

TEST_CASE("the distributed sampler splits each epoch's permutation evenly across replicas", "[data]") {
  const std::int64_t n = 10;
  const int replicas = GENERATE(1, 3, 4);
  std::multiset<std::int64_t> seen;
  std::vector<std::int64_t> first;
  for (int r = 0; r < replicas; ++r) {
    data::DistributedSampler s(n, replicas, r, true, 7);
    s.set_epoch(2);
    auto idx = s.indices();
    CHECK(static_cast<std::int64_t>(idx.size()) == (n + replicas - 1) / replicas);
    if (r == 0) first = idx;
    seen.insert(idx.begin(), idx.end());
  }
  for (std::int64_t i = 0; i < n; ++i) CHECK(seen.count(i) >= 1);  // every example, padding repeats a few
  CHECK(static_cast<std::int64_t>(seen.size()) == (n + replicas - 1) / replicas * replicas);
  data::DistributedSampler again(n, replicas, 0, true, 7);
  again.set_epoch(2);
  CHECK(again.indices() == first);
  again.set_epoch(3);
  if (replicas < 4) CHECK(again.indices() != first);
  data::DistributedSampler drop(n, 4, 1, false, 0, true);
  CHECK(drop.indices() == std::vector<std::int64_t>{1, 5});
  CHECK_THROWS_WITH(data::DistributedSampler(n, 2, 2), Catch::Contains("rank 2 is outside [0, 2)"));
}

TEST_CASE("batches gather examples in the sampler's order", "[data]") {
  data::Dataset d;
  d.images = compute::Tensor::from({0, 0, 1, 1, 2, 2, 3, 3, 4, 4}, {5, 2});
  d.labels = compute::Tensor::from_i32(std::vector<std::int32_t>{0, 1, 2, 3, 4}, {5});
  data::Batcher b(d, {4, 2, 0, 1, 3}, 2);
  CHECK(b.batches() == 3);
  compute::Tensor x, y;
  REQUIRE(b.next(x, y));
  CHECK(x.to_vector() == std::vector<float>{4, 4, 2, 2});
  REQUIRE(b.next(x, y));
  REQUIRE(b.next(x, y));
  CHECK(x.shape() == compute::Shape{1, 2});
  CHECK(y.i32()[0] == 3);
  CHECK_FALSE(b.next(x, y));
}
