#pragma once
// Internal to trainers/schedule*.cpp: where model stages live, and what kind
// of instruction an Op is.
#include "trainers/schedule.hpp"

namespace troupe::pipeline::detail {

inline bool is_comm(Op op) {
  return op == Op::SEND_F || op == Op::RECV_F || op == Op::SEND_B || op == Op::RECV_B;
}
inline bool has_mb(Op op) { return op != Op::REDUCE_GRAD && op != Op::STEP; }

// Where model stage s lives.
struct Place {
  int actor, chunk;
};

// K stage actors with v chunks each: chunk c of actor r is model stage c*K + r.
struct Layout {
  int K, v;
  int S() const { return K * v; }
  int stage(int actor, int chunk) const { return chunk * K + actor; }
  Place place(int s) const { return {s % K, s / K}; }
  bool exists(int s, int d) const { return s + d >= 0 && s + d < S(); }
  // Whether model stage s's neighbour (s + d) exists and lives on another actor.
  bool remote(int s, int d) const { return exists(s, d) && place(s + d).actor != place(s).actor; }
};

}  // namespace troupe::pipeline::detail
