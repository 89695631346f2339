// troupe-bench tensor-parallel: a wide MLP block (Linear W -> 4W, ReLU,
// Linear 4W -> W, Megatron's shape) split over tp ranks, each a worker
// process with one compute thread, the pair column- then row-parallel
// (actors/nn/tensor_parallel.hpp) over a shared-memory group. Per tp: the
// block's forward + backward rate, the share of that time in its two
// all-reduces, the bytes a rank holds (parameters and SGD momentum), and the
// all-reduces' bus bandwidth (bytes / time x 2(tp-1)/tp, as nccl-tests).
// tp = 1 is the unsplit block with one thread.
#include <thread>

#include <fmt/format.h>

#include "actors/compute/ops.hpp"
#include "actors/nn/model.hpp"
#include "actors/nn/tensor_parallel.hpp"
#include "actors/optim/optimizer.hpp"
#include "runtime/coll/create.hpp"
#include "runtime/troupe.hpp"
#include "tools/bench/report.hpp"

namespace troupe::bench {

struct TpMeasure {
  double seconds = 0;        ///< per forward + backward
  double allreduce_s = 0;    ///< of that, in the all-reduces
  double allreduce_bytes = 0;  ///< per forward + backward
  std::int64_t bytes_held = 0;
  TROUPE_FIELDS(seconds, allreduce_s, allreduce_bytes, bytes_held)
};

class TpMember {
 public:
  TpMeasure run(std::int64_t width, std::int64_t batch, int tp, double seconds) {
    compute::set_num_threads(1);
    std::shared_ptr<coll::Group> g = tp > 1 ? coll::group("tp") : nullptr;
    const int rank = g ? static_cast<int>(g->rank()) : 0;
    double in_sum = 0, summed = 0;
    nn::TensorParallel where{rank, tp, {}};
    if (g)
      where.sum = [&, g](compute::Tensor& t) {
        const auto t0 = Clock::now();
        g->allreduce(std::span<float>(t.f32(), static_cast<std::size_t>(t.numel()))).get();
        in_sum += micros(Clock::now() - t0) / 1e6;
        summed += static_cast<double>(t.numel()) * sizeof(float);
      };
    nn::Model block;
    if (tp > 1) {
      block.add(std::make_unique<nn::ColumnParallelLinear>(width, 4 * width, true, 1, where));
      block.add(std::make_unique<nn::ReLU>());
      block.add(std::make_unique<nn::RowParallelLinear>(4 * width, width, true, 2, where));
    } else {
      block.add(std::make_unique<nn::Linear>(width, 4 * width, true, 1));
      block.add(std::make_unique<nn::ReLU>());
      block.add(std::make_unique<nn::Linear>(4 * width, width, true, 2));
    }
    // The input and the output gradient: the same on every rank.
    nn::Rng rng(7);
    std::vector<float> xv(static_cast<std::size_t>(batch * width)), dv(xv.size());
    for (auto& v : xv) v = rng.uniform(-1, 1);
    for (auto& v : dv) v = rng.uniform(-1, 1) * 1e-3f;
    const auto x = compute::Tensor::from(xv, {batch, width}), dy = compute::Tensor::from(dv, {batch, width});
    optim::Sgd opt(optim::SgdOptions{1e-6f, 0.9f, 0.0f, 0.0f, false});
    nn::Tape tape;
    auto pass = [&]() {
      block.zero_grad();
      block.forward(x, tape);
      block.backward(dy, tape, {}, true);  // the input gradient too: f's all-reduce
    };
    pass();  // warm-up; then the momentum buffers exist
    opt.step(block.params());
    if (g) g->barrier().get();
    in_sum = summed = 0;
    int n = 0;
    const auto start = Clock::now();
    // Every rank runs the same number of passes: rank 0 decides when to stop.
    std::vector<std::int32_t> more{1};
    while (more[0]) {
      pass();
      ++n;
      more[0] = micros(Clock::now() - start) / 1e6 < seconds ? 1 : 0;
      if (g) g->broadcast(std::span<std::int32_t>(more), 0).get();
    }
    const double total = micros(Clock::now() - start) / 1e6;
    TpMeasure m;
    m.seconds = total / n;
    m.allreduce_s = in_sum / n;
    m.allreduce_bytes = summed / n;
    for (auto* p : block.params()) m.bytes_held += p->value.numel() * 4;
    for (auto& [name, t] : opt.state()) m.bytes_held += t.numel() * 4;
    return m;
  }
};

}  // namespace troupe::bench

TROUPE_ACTOR(troupe::bench::TpMember, run);

namespace troupe::bench {

std::vector<Row> tensor_parallel_rows(const TpConfig& cfg, std::vector<std::string>& notes) {
  std::vector<Row> rows;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::int64_t unsplit_bytes = 0;
  double unsplit_rate = 0;
  for (int tp : cfg.tp) {
    Runtime rt({.threads = 2});
    auto mesh = rt.spawn_mesh<TpMember>(static_cast<std::size_t>(tp), Options{}.process());
    if (tp > 1) {
      coll::GroupOptions o;
      o.name = "tp";
      o.heap_bytes = 1 << 20;
      coll::create_group(rt, mesh, o);
    }
    auto all = mesh.call(&TpMember::run, cfg.width, cfg.batch, tp, cfg.seconds).get(std::chrono::minutes(10));
    double worst = 0, ar = 0, ar_bytes = 0;
    std::int64_t held = 0;
    for (auto& m : all) {
      worst = std::max(worst, m.seconds);
      ar = std::max(ar, m.allreduce_s);
      ar_bytes = m.allreduce_bytes;
      held = std::max(held, m.bytes_held);
    }
    const double rate = static_cast<double>(cfg.batch) / worst;
    if (tp == 1) {
      unsplit_bytes = held;
      unsplit_rate = rate;
    }
    // Two all-reduces per pass (g forward, f backward), each of ar_bytes / 2.
    const double per = ar_bytes / 2, t_per = ar / 2;
    const double busbw = tp > 1 && t_per > 0 ? per / t_per * 2.0 * (tp - 1) / tp / 1e9 : 0;
    rows.push_back(Row()
                       .set("tp", static_cast<std::int64_t>(tp))
                       .set("width", cfg.width)
                       .set("samples_per_s", rate)
                       .set("vs_tp1", unsplit_rate > 0 ? Value(rate / unsplit_rate) : Value(std::string("-")))
                       .set("allreduce_share", worst > 0 ? ar / worst : 0.0)
                       .set("bytes_per_rank", held)
                       .set("of_unsplit", unsplit_bytes > 0 ? Value(static_cast<double>(held) / static_cast<double>(unsplit_bytes))
                                                            : Value(std::string("-")))
                       .set("busbw_gbps", busbw)
                       .set("oversubscribed", std::string(static_cast<unsigned>(tp) > cores ? "yes" : "no")));
  }
  notes.push_back(fmt::format("block: Linear {} -> {}, ReLU, Linear {} -> {}; batch {}; forward + backward (with the input "
                              "gradient); each rank a worker process with one compute thread; this machine: {} cores",
                              cfg.width, 4 * cfg.width, 4 * cfg.width, cfg.width, cfg.batch, cores));
  notes.push_back("bytes_per_rank: parameters and SGD momentum; of_unsplit: that over tp = 1's (the goal is 1/tp within "
                  "5%); busbw_gbps: the all-reduces' bus bandwidth in GB/s, nccl-tests' formula, over the time a rank spends in them (waiting for the other ranks included); vs_tp1 and of_unsplit are '-' without a "
                  "tp = 1 row; oversubscribed: more ranks than this machine has cores");
  return rows;
}

}  // namespace troupe::bench
