#pragma once
// Who this process is, as a lease holder ("hostname:pid"), and whether another holder on
// this machine is still alive — so a killed run's lease is taken over at once instead of
// blocking its module until the lease expires.
#include <string>

namespace crmsync {

std::string this_process_holder();
// False only when the holder names this host and no such process exists.
bool holder_may_be_alive(const std::string& holder);

}  // namespace crmsync
