# troupe as a package: `cmake --install` puts the public headers under
# <prefix>/include/troupe/ (included as "runtime/troupe.hpp", as in the
# source tree), the libraries, the programs, the CUDA plugin under
# <libdir>/troupe/, and a CMake package:
#
#   find_package(troupe REQUIRED)
#   target_link_libraries(app PRIVATE troupe::runtime)   # or troupe::actors, troupe::trainers
#
# Installed headers are the public surface: the headers a program includes
# and the detail/ headers those need, no more (tests/install_itest checks
# each compiles on its own from the install). Internal ones (runtime/net,
# cluster, remote, coll/detail, detail/executor, ...) stay in the tree.
include(CMakePackageConfigHelpers)
set(TROUPE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/troupe)

set(TROUPE_PUBLIC_HEADERS
  runtime/actor.hpp runtime/actor_cell.hpp runtime/actor_ref.hpp runtime/asio.hpp runtime/context.hpp
  runtime/device.hpp runtime/enum_words.hpp runtime/errors.hpp runtime/init.hpp runtime/mesh.hpp runtime/monitor.hpp
  runtime/options.hpp runtime/placement.hpp runtime/ref.hpp runtime/runtime.hpp runtime/task.hpp runtime/troupe.hpp
  runtime/telemetry.hpp runtime/trace.hpp runtime/when.hpp
  runtime/codec/capnp.hpp runtime/codec/codec.hpp runtime/codec/codec_types.hpp
  runtime/coll/backend.hpp runtime/coll/create.hpp runtime/coll/group.hpp runtime/coll/shm.hpp runtime/coll/types.hpp
  runtime/detail/actor_registry.hpp runtime/detail/call.hpp runtime/detail/call_check.hpp runtime/detail/cell.hpp
  runtime/detail/handle_codec.hpp runtime/detail/intrusive.hpp runtime/detail/mailbox.hpp
  runtime/detail/method_traits.hpp runtime/detail/pool.hpp runtime/detail/process.hpp runtime/detail/process_call.hpp
  runtime/detail/process_role.hpp runtime/detail/scheduler.hpp runtime/detail/state.hpp runtime/detail/strand.hpp
  runtime/detail/type_name.hpp runtime/detail/waits.hpp
  actors/replica.hpp actors/training.hpp actors/ckpt/checkpoint.hpp
  actors/compute/dtype.hpp actors/compute/errors.hpp actors/compute/gpu_ops.hpp actors/compute/graph.hpp
  actors/compute/half.hpp actors/compute/hash.hpp actors/compute/ops.hpp actors/compute/ops_impl.hpp
  actors/compute/parallel.hpp actors/compute/stream.hpp actors/compute/tensor.hpp
  actors/data/idx.hpp actors/data/sampler.hpp
  actors/nn/layer.hpp actors/nn/layers.hpp actors/nn/loss.hpp actors/nn/model.hpp
  actors/optim/optimizer.hpp
  trainers/data_parallel.hpp trainers/metrics.hpp trainers/pipeline.hpp trainers/run_loop.hpp trainers/schedule.hpp
  trainers/topology.hpp)
foreach(h ${TROUPE_PUBLIC_HEADERS})
  get_filename_component(dir ${h} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/${h} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/troupe/${dir} COMPONENT dev)
endforeach()

install(TARGETS troupe_core troupe_cluster troupe_remote troupe_coll troupe_runtime troupe_actors troupe_trainers
        EXPORT troupeTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/troupe)
install(EXPORT troupeTargets NAMESPACE troupe:: DESTINATION ${TROUPE_CMAKE_DIR} COMPONENT dev)
# Made in a folder of their own, not at the build tree's root: there
# find_package(troupe) (-DCMAKE_PREFIX_PATH=build) would take a config
# whose targets file exists only once installed, and fail on that.
set(_troupe_pkg ${PROJECT_BINARY_DIR}/package-config)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/troupeConfig.cmake.in
                              ${_troupe_pkg}/troupeConfig.cmake INSTALL_DESTINATION ${TROUPE_CMAKE_DIR})
write_basic_package_version_file(${_troupe_pkg}/troupeConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${_troupe_pkg}/troupeConfig.cmake ${_troupe_pkg}/troupeConfigVersion.cmake
        DESTINATION ${TROUPE_CMAKE_DIR} COMPONENT dev)

if(TROUPE_BUILD_TOOLS)
  install(TARGETS troupe_cli troupe-daemon troupe-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  # The example topologies, for `troupe run <datadir>/troupe/topologies/fashion_mnist_dp.toml`.
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/topologies DESTINATION ${CMAKE_INSTALL_DATADIR}/troupe
          COMPONENT runtime FILES_MATCHING PATTERN "*.toml")
endif()
if(TARGET troupe_cuda)
  install(TARGETS troupe_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/troupe COMPONENT runtime)
endif()
