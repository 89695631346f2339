#include "runtime/cluster/telemetry_proto.hpp"

namespace troupe::cluster {

void to_proto(const telemetry::JobStatus& j, proto::JobReport::Builder b) {
  b.setJobId(j.id);
  b.setName(j.name);
  b.setStrategy(j.strategy);
  b.setState(j.state);
  b.setStep(j.step);
  b.setTotalSteps(j.total_steps);
  b.setEpoch(j.epoch);
  b.setLoss(j.loss);
  b.setSamplesPerS(j.samples_per_s);
  b.setElapsedS(j.elapsed_s);
  b.setEtaS(j.eta_s);
  b.setStepS(j.step_s);
  auto s = b.initSplit();
  s.setData(j.split.data);
  s.setForward(j.split.forward);
  s.setBackward(j.split.backward);
  s.setCollective(j.split.collective);
  s.setOptimizer(j.split.optimizer);
  auto ranks = b.initRanks(static_cast<unsigned>(j.ranks.size()));
  for (unsigned i = 0; i < j.ranks.size(); ++i) {
    const auto& r = j.ranks[i];
    ranks[i].setRank(r.rank);
    ranks[i].setLabel(r.label);
    ranks[i].setPeers(r.peers);
    ranks[i].setActorId(r.actor_id);
    ranks[i].setComputeS(r.compute_s);
    ranks[i].setWaitS(r.wait_s);
  }
  b.setDetail(j.detail);
  b.setRecoveries(j.recoveries);
  b.setTestAccuracy(j.test_accuracy);
}

telemetry::JobStatus job_from_proto(proto::JobReport::Reader r) {
  telemetry::JobStatus j;
  j.id = r.getJobId();
  j.name = r.getName().cStr();
  j.strategy = r.getStrategy().cStr();
  j.state = r.getState().cStr();
  j.step = r.getStep();
  j.total_steps = r.getTotalSteps();
  j.epoch = r.getEpoch();
  j.loss = r.getLoss();
  j.samples_per_s = r.getSamplesPerS();
  j.elapsed_s = r.getElapsedS();
  j.eta_s = r.getEtaS();
  j.step_s = r.getStepS();
  auto s = r.getSplit();
  j.split = {s.getData(), s.getForward(), s.getBackward(), s.getCollective(), s.getOptimizer()};
  for (auto k : r.getRanks())
    j.ranks.push_back({k.getRank(), k.getLabel().cStr(), k.getPeers().cStr(), k.getActorId(), k.getComputeS(),
                       k.getWaitS()});
  j.detail = r.getDetail().cStr();
  j.recoveries = r.getRecoveries();
  j.test_accuracy = r.getTestAccuracy();
  return j;
}

void to_proto(const telemetry::GroupStatus& g, proto::GroupReport::Builder b) {
  b.setName(g.name);
  b.setUid(g.uid);
  b.setBackend(g.backend);
  auto m = b.initMembers(static_cast<unsigned>(g.members.size()));
  for (unsigned i = 0; i < g.members.size(); ++i) m.set(i, g.members[i]);
  b.setState(g.state);
  b.setDetail(g.detail);
}

telemetry::GroupStatus group_from_proto(proto::GroupReport::Reader r) {
  telemetry::GroupStatus g;
  g.name = r.getName().cStr();
  g.uid = r.getUid();
  g.backend = r.getBackend().cStr();
  for (auto m : r.getMembers()) g.members.push_back(m);
  g.state = r.getState().cStr();
  g.detail = r.getDetail().cStr();
  return g;
}

void to_proto(const telemetry::Straggler& s, proto::Straggler::Builder b) {
  b.setRank(s.rank);
  b.setLabel(s.label);
  b.setComputeS(s.compute_s);
  b.setPeersS(s.peers_s);
  b.setSlowdown(s.slowdown);
  b.setSinceStep(s.since_step);
}

telemetry::Straggler straggler_from_proto(proto::Straggler::Reader r) {
  return {r.getRank(), r.getLabel().cStr(), r.getComputeS(), r.getPeersS(), r.getSlowdown(), r.getSinceStep()};
}

}  // namespace troupe::cluster
