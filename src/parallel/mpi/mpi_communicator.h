// The MPI communicator behind world(): defined in mpi_communicator.cpp when the build found MPI,
// else in no_mpi.cpp (CMake compiles one of the two).
#pragma once

#include <string>

#include "ddpm/parallel/communicator.h"

namespace ddpm::detail {

bool mpi_built();
std::string mpi_library_version();
// MPI_COMM_WORLD, initialising MPI on first use and finalising it at exit.
Communicator& mpi_world();

}  // namespace ddpm::detail
