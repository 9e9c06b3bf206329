// The tests' QMP client is the rewind tools' own (rewind/lib/qmp_client.hh):
// query-replay, pmemsave, stop/cont, quit, events.
#pragma once

#include "qmp_client.hh"

namespace qemu_rewind::test {

using qemu_rewind::QmpClient;
using qemu_rewind::QmpError;

}  // namespace qemu_rewind::test
