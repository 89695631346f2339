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

// The other end of stage actor r's transfer a: the actor, and the action
// there that matches it.
struct Peer {
  int actor;
  Action match;
};
inline Peer transfer_peer(const Layout& L, int r, const Action& a) {
  const int st = L.stage(r, a.chunk);
  const int d = (a.op == Op::SEND_F || a.op == Op::RECV_B) ? +1 : -1;
  const Place p = L.place(st + d);
  const Op m = a.op == Op::SEND_F   ? Op::RECV_F
               : a.op == Op::RECV_F ? Op::SEND_F
               : a.op == Op::SEND_B ? Op::RECV_B
                                    : Op::SEND_B;
  return {p.actor, Action{m, a.mb, p.chunk}};
}

}  // namespace troupe::pipeline::detail
