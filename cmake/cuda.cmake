# The CUDA backend: finds nvcc (PATH, CUDACXX, or /usr/local/cuda), the CUDA toolkit and cuDNN 9, and
# builds src/kernels/cuda/ into the static library ddpm_cuda. Sets DDPM_CUDA_FOUND when it did.
# A machine without nvcc (a plain Debian box) gets the stand-in src/kernels/cuda/no_cuda/ instead:
# `--device cuda` then says the binary was built without CUDA.
include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "CUDA backend: no nvcc found (set CUDACXX or install the CUDA toolkit)")
  return()
endif()
# Hopper (H100, H200) machine code plus compute_90 PTX, which newer chips compile at load.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90-real 90-virtual)
endif()
enable_language(CUDA)
# CMake before 3.26 knows no C++20 flag for nvcc (which has had -std=c++20 since CUDA 12.0) and
# would refuse to generate the build.
if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit QUIET)
find_path(DDPM_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{CUDNN_ROOT}/include)
find_library(DDPM_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{CUDNN_ROOT}/lib)
if(NOT CUDAToolkit_FOUND OR NOT DDPM_CUDNN_INCLUDE_DIR OR NOT DDPM_CUDNN_LIBRARY)
  message(STATUS "CUDA backend: nvcc found but the CUDA toolkit or cuDNN is missing (cudnn.h: ${DDPM_CUDNN_INCLUDE_DIR})")
  return()
endif()
file(STRINGS ${DDPM_CUDNN_INCLUDE_DIR}/cudnn_version.h cudnn_version_lines REGEX "define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
string(REGEX REPLACE "[^0-9;]" "" DDPM_CUDNN_VERSION "${cudnn_version_lines}")
string(REPLACE ";" "." DDPM_CUDNN_VERSION "${DDPM_CUDNN_VERSION}")

file(GLOB DDPM_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/kernels/cuda/*.cu
     ${PROJECT_SOURCE_DIR}/src/kernels/cuda/*.cpp)
add_library(ddpm_cuda STATIC ${DDPM_CUDA_SOURCES})
target_include_directories(ddpm_cuda PUBLIC ${PROJECT_SOURCE_DIR}/include PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_include_directories(ddpm_cuda SYSTEM PRIVATE ${DDPM_CUDNN_INCLUDE_DIR})
target_compile_options(ddpm_cuda PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${DDPM_WARNINGS}>
                       $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall,-Wextra>)
if(DDPM_WERROR)
  target_compile_options(ddpm_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
endif()
set_target_properties(ddpm_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_RUNTIME_LIBRARY Shared)
target_link_libraries(ddpm_cuda PUBLIC CUDA::cudart CUDA::cublasLt ${DDPM_CUDNN_LIBRARY} ${CMAKE_DL_LIBS})
target_compile_definitions(ddpm_cuda PUBLIC DDPM_HAVE_CUDA=1)
set(DDPM_CUDA_FOUND TRUE)
