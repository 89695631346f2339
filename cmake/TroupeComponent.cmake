# troupe_add_component(NAME <name> SOURCES ... [CUDA_SOURCES ...] [STUB_SOURCES ...]
#                      [DEPS ...] [PRIVATE_DEPS ...])
#
# One library target per layer, named troupe_<name> (troupe::<name>). GPU code is
# isolated by file: CUDA_SOURCES are compiled when the build has CUDA, the
# STUB_SOURCES (same interface, CPU-only) otherwise.
function(troupe_add_component)
  cmake_parse_arguments(C "" "NAME" "SOURCES;CUDA_SOURCES;STUB_SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target troupe_${C_NAME})
  set(srcs ${C_SOURCES})
  if(TROUPE_HAVE_CUDA)
    list(APPEND srcs ${C_CUDA_SOURCES})
  else()
    list(APPEND srcs ${C_STUB_SOURCES})
  endif()
  if(NOT srcs)
    # A component with no compiled code yet: an interface target keeps the
    # dependency graph (tools -> trainers -> actors -> runtime) in place.
    add_library(${target} INTERFACE)
    add_library(troupe::${C_NAME} ALIAS ${target})
    target_link_libraries(${target} INTERFACE ${C_DEPS})
    return()
  endif()
  add_library(${target} STATIC ${srcs})
  add_library(troupe::${C_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${C_NAME})
  # Headers are included as "runtime/...", "actors/...": from the source tree
  # here, from <prefix>/include/troupe once installed (TroupeInstall.cmake).
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                              $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/troupe>)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_link_libraries(${target} PUBLIC ${C_DEPS} PRIVATE ${C_PRIVATE_DEPS})
  if(TROUPE_HAVE_CUDA)
    target_compile_definitions(${target} PRIVATE TROUPE_HAVE_CUDA=1)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>)
endfunction()

# troupe_add_test_suites(COMPONENT <name> SOURCES a_test.cpp ... DEPS ... [MAIN target])
#
# One Catch2 binary per component; one CTest entry per suite (source file),
# selected with Catch's filename tags (-#). Labels: files under tests/integration
# get "integration", *_gpu_test.cpp and *_gpu_itest.cpp get "gpu", everything else "unit".
function(troupe_add_test_suites)
  cmake_parse_arguments(T "" "COMPONENT;MAIN" "SOURCES;DEPS" ${ARGN})
  if(NOT T_MAIN)
    set(T_MAIN troupe_test_main)
  endif()
  set(bin troupe_${T_COMPONENT}_tests)
  add_executable(${bin} ${T_SOURCES})
  target_link_libraries(${bin} PRIVATE ${T_MAIN} ${T_DEPS})
  set_target_properties(${bin} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  foreach(src ${T_SOURCES})
    if(NOT src MATCHES "_i?test\\.cpp$")
      continue()  # support code, not a suite
    endif()
    get_filename_component(suite ${src} NAME_WE)
    set(label unit)
    if(suite MATCHES "_gpu_i?test$")
      set(label gpu)
    elseif(src MATCHES "integration/")
      set(label integration)
    endif()
    add_test(NAME ${T_COMPONENT}.${suite} COMMAND ${bin} "-#" "--warn" "NoTests" "[#${suite}]")
    set_tests_properties(${T_COMPONENT}.${suite} PROPERTIES LABELS ${label} TIMEOUT 300
      ENVIRONMENT "TROUPE_BIN_DIR=${PROJECT_BINARY_DIR}/bin;TROUPE_TEST_WATCHDOG_S=280")
  endforeach()
endfunction()
