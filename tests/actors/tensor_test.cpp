#include <catch2/catch.hpp>

#include "actors/compute/errors.hpp"
#include "actors/compute/stream.hpp"
#include "actors/compute/tensor.hpp"

using namespace troupe;
using compute::Tensor;

TEST_CASE("tensors: shape, views share storage, copies do not", "[tensor]") {
  Tensor t = Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.numel() == 6);
  CHECK(t.contiguous());
  CHECK(t.describe() == "f32[2, 3] on cpu");
  Tensor v = t.view({3, -1});
  CHECK(v.shape() == compute::Shape{3, 2});
  CHECK(v.same_storage(t));
  v.f32()[0] = 10;
  CHECK(t.to_vector()[0] == 10);
  Tensor row = t.narrow(1, 1);
  CHECK(row.to_vector() == std::vector<float>{4, 5, 6});
  Tensor tt = t.transposed();
  CHECK_FALSE(tt.contiguous());
  CHECK(tt.to_vector() == std::vector<float>{10, 4, 2, 5, 3, 6});  // gathered in row-major order of the view
  Tensor c = t.clone();
  c.fill(0);
  CHECK(t.to_vector()[1] == 2);
  CHECK_THROWS_WITH(t.view({4, 2}), Catch::Contains("cannot view f32[2, 3] on cpu as [4, 2]"));
  CHECK_THROWS_WITH(tt.view({6}), Catch::Contains("non-contiguous"));
  CHECK_THROWS_WITH(t.narrow(1, 2), Catch::Contains("rows [1, 3)"));
  CHECK_THROWS_WITH(Tensor::from({1, 2}, {3}), Catch::Contains("2 values do not fill"));
  CHECK_THROWS_AS(t.i32(), compute::ShapeError);
}

TEST_CASE("device tensors without a device are a clear error", "[tensor]") {
  if (compute::cuda_available()) {
    WARN("a CUDA device is present: the gpu suite covers device tensors");
    return;
  }
  CHECK_THROWS_AS(Tensor::empty({4}, compute::DType::f32, compute::Device::cuda(0)), compute::DeviceError);
  CHECK_THROWS_AS(compute::Stream(0), compute::DeviceError);
  CHECK(compute::Device::parse("cuda:1") == compute::Device::cuda(1));
}
