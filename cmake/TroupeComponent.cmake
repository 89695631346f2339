# troupe_add_component(NAME <folder> SOURCES ... [CUDA_SOURCES ...] [STUB_SOURCES ...]
#                      [DEPS ...] [PRIVATE_DEPS ...])
#
# One library target per top-level folder, named troupe_<folder>. GPU code is
# isolated by file: CUDA_SOURCES are compiled when the build has CUDA, the
# STUB_SOURCES (same interface, CPU-only) otherwise.
function(troupe_add_component)
  cmake_parse_arguments(C "" "NAME" "SOURCES;CUDA_SOURCES;STUB_SOURCES;DEPS;PRIVATE_DEPS;CUDA_DEPS" ${ARGN})
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
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${target} PUBLIC ${C_DEPS} PRIVATE ${C_PRIVATE_DEPS})
  if(TROUPE_HAVE_CUDA)
    target_link_libraries(${target} PRIVATE ${C_CUDA_DEPS})
    target_compile_definitions(${target} PUBLIC TROUPE_HAVE_CUDA=1)
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
  set_target_properties(${bin} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
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
      ENVIRONMENT "TROUPE_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
  endforeach()
endfunction()
