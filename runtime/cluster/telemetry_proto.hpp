#pragma once
// Telemetry (runtime/telemetry.hpp) to and from the control protocol.
#include "proto/control.capnp.h"
#include "runtime/telemetry.hpp"

namespace troupe::cluster {

void to_proto(const telemetry::JobStatus& j, proto::JobReport::Builder b);
telemetry::JobStatus job_from_proto(proto::JobReport::Reader r);
void to_proto(const telemetry::GroupStatus& g, proto::GroupReport::Builder b);
telemetry::GroupStatus group_from_proto(proto::GroupReport::Reader r);
void to_proto(const telemetry::Straggler& s, proto::Straggler::Builder b);
telemetry::Straggler straggler_from_proto(proto::Straggler::Reader r);

}  // namespace troupe::cluster
