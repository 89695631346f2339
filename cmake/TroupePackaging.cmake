# Debian packages (cpack -G DEB, from a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr):
#   troupe      the programs (troupe, troupe-daemon, troupe-bench) and the
#               CUDA plugin when the build has CUDA
#   troupe-dev  headers, static libraries and the CMake package
set(CPACK_PACKAGE_NAME troupe)
set(CPACK_PACKAGE_VENDOR "troupe")
set(CPACK_PACKAGE_CONTACT "troupe developers <troupe@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Actor runtime for training models at cluster scale")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Programs and the plugin without debug info (static libraries keep their symbols).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME troupe)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME troupe-dev)
# Debian 12's names. troupe-dev needs pkg-config: Cap'n Proto's CMake package,
# which troupeConfig.cmake loads, calls pkg_check_modules. OpenBLAS and (for the plugin) the CUDA runtime are
# loaded at first use: recommended, not required.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "libc6, libstdc++6, libfmt9, zlib1g")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_RECOMMENDS "libopenblas0 | libopenblas0-pthread, dataset-fashion-mnist")
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "troupe (= ${PROJECT_VERSION}), g++ (>= 4:12), cmake (>= 3.25), pkg-config, libfmt-dev, libcapnp-dev, zlib1g-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "libboost1.81-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "troupe programs: the CLI, the node daemon, the benchmarks")
set(CPACK_COMPONENT_DEV_DESCRIPTION "troupe headers, static libraries and CMake package")
include(CPack)
