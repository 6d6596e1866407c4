// Builds without MPI: world() is always one process (compiled when CMake did not find MPI).
#include <stdexcept>

#include "parallel/mpi/mpi_communicator.h"

namespace ddpm::detail {

bool mpi_built() { return false; }
std::string mpi_library_version() { return ""; }
Communicator& mpi_world() { throw std::logic_error("mpi_world: this build has no MPI"); }

}  // namespace ddpm::detail
