# libddpm.so: the C interface (include/ddpm.h) for programs that embed generation. Only the ddpm_*
# functions are exported (a version script hides the C++ library, oneDNN's and everything else it
# pulls in), so a host program's own copies of those libraries cannot clash with ours.
include(GNUInstallDirs)  # before the install-interface paths below use its variables
include(CMakePackageConfigHelpers)
add_library(ddpm_c SHARED src/capi/c_api.cpp)
set_target_properties(ddpm_c PROPERTIES OUTPUT_NAME ddpm EXPORT_NAME ddpm VERSION ${PROJECT_VERSION}
                                        SOVERSION ${PROJECT_VERSION_MAJOR} INSTALL_RPATH_USE_LINK_PATH ON)
target_compile_options(ddpm_c PRIVATE ${DDPM_WARNINGS})
target_include_directories(ddpm_c PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                                         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(ddpm_c PRIVATE ddpm)
target_link_options(ddpm_c PRIVATE -Wl,--version-script=${PROJECT_SOURCE_DIR}/src/capi/libddpm.map -Wl,--no-undefined)
set_property(TARGET ddpm_c APPEND PROPERTY LINK_DEPENDS ${PROJECT_SOURCE_DIR}/src/capi/libddpm.map)
add_library(ddpm::ddpm ALIAS ddpm_c)

# examples/generate.c, built against the library as a user's program is.
add_executable(ddpm_generate_example examples/generate.c)
set_target_properties(ddpm_generate_example PROPERTIES OUTPUT_NAME generate-example C_STANDARD 99 C_EXTENSIONS OFF)
target_compile_options(ddpm_generate_example PRIVATE -Wall -Wextra -Wpedantic $<$<BOOL:${DDPM_WERROR}>:-Werror>)
target_link_libraries(ddpm_generate_example PRIVATE ddpm::ddpm)

# `cmake --install build --prefix PREFIX`: the library, its header, a CMake package (ddpm::ddpm)
# and a pkg-config file.
install(TARGETS ddpm_c EXPORT ddpmTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/ddpm.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ddpmTargets NAMESPACE ddpm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ddpm)
configure_package_config_file(cmake/ddpmConfig.cmake.in ${PROJECT_BINARY_DIR}/ddpmConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ddpm)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ddpmConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ddpmConfig.cmake ${PROJECT_BINARY_DIR}/ddpmConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ddpm)
# The prefix relative to the .pc file, so that `--prefix` at install time is honoured.
file(RELATIVE_PATH DDPM_PC_PREFIX "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
string(REGEX REPLACE "/$" "" DDPM_PC_PREFIX "${DDPM_PC_PREFIX}")
configure_file(cmake/ddpm.pc.in ${PROJECT_BINARY_DIR}/ddpm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ddpm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
