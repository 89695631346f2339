#pragma once
// The operations layers are built from, each with its backward, on float32
// tensors on the host (OpenBLAS) or one CUDA device (cuBLAS + CUDA kernels).
// On a device, linear, relu, gelu, softmax_xent and count_correct also take
// bf16 / fp16 operands (all of one type; float32 math inside; the loss and
// counts stay float32): see half.hpp.
// All operands of one call live on the same device; outputs are supplied by
// the caller (no allocation on the step's hot path). On a device, work is
// queued on the calling thread's current stream (set_stream) without waiting.
#include <cstdint>

#include "actors/compute/tensor.hpp"

namespace troupe::compute {

/// The stream device operations on this thread queue on (null: the default stream).
void set_stream(Stream* stream) noexcept;
Stream* current_stream() noexcept;

/// Threads for host math (OpenBLAS and the element-wise loops); 0 = all cores.
void set_num_threads(int n);
int num_threads() noexcept;

/// y[B,out] = x[B,in] w[out,in]^T (+ b[out]); w is laid out as PyTorch's Linear.
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y);
/// dw (+)= dy^T x, db (+)= column sums of dy, dx = dy w (each skipped when undefined).
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw, Tensor& db,
                     bool accumulate);

void relu_forward(const Tensor& x, Tensor& y);                      ///< y may be x
void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx);  ///< from the output; dx may be dy
/// GELU with erf, as torch.nn.GELU() by default.
void gelu_forward(const Tensor& x, Tensor& y);
void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx);

/// Inverted dropout: keeps each element with probability 1-p and scales it by
/// 1/(1-p). mask records the scale (0 or 1/(1-p)). The draw for element i is
/// a hash of (seed, i), so host and device give the same mask.
void dropout_forward(const Tensor& x, float p, std::uint64_t seed, Tensor& y, Tensor& mask);
void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx);

/// Layer normalisation over the last dimension of x[B,D]; mean and rstd [B] are kept for backward.
void layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y, Tensor& mean,
                       Tensor& rstd);
void layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate);

/// Softmax cross-entropy, mean over the batch: logits[B,C], labels int32[B].
/// Writes dlogits = (softmax - onehot) / B, loss[1] = the mean loss and
/// correct[1] = how many rows' argmax equals their label. A label outside
/// [0, C) is a ShapeError on the host; on a device it counts as a zero row.
void softmax_xent(const Tensor& logits, const Tensor& labels, Tensor& dlogits, Tensor& loss, Tensor& correct);
/// Class scores to predictions: correct[1] = rows whose argmax equals the label.
void count_correct(const Tensor& logits, const Tensor& labels, Tensor& correct);

// Optimizer kernels (PyTorch's semantics; see optim/).
void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buf, float lr, float momentum, float dampening,
                bool nesterov, float weight_decay, bool first_step);
void adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, float lr, float beta1, float beta2,
                  float eps, float weight_decay, std::int64_t step);
/// Sum of squares of t (into out[1]: added to what is there).
void sum_squares(const Tensor& t, Tensor& out);
void scale_(Tensor& t, float factor);
/// y += alpha * x
void axpy_(Tensor& y, const Tensor& x, float alpha);

/// The uniform [0,1) draw dropout makes for element i under seed.
float hash_uniform(std::uint64_t seed, std::uint64_t i) noexcept;

}  // namespace troupe::compute
