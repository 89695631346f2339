# cmake -DROOT=<source dir> -P tests/layers.cmake
#
# The runtime's layers depend one way (runtime/CMakeLists.txt): a file may
# include headers of its own layer and the layers below it, never above.
# Fails naming every file:line that includes upward.
#
#   core      runtime/*.{hpp,cpp}, runtime/detail/, runtime/codec/
#   cluster   runtime/net/, runtime/cluster/
#   remote    runtime/remote/
#   coll      runtime/coll/
#   actors    actors/            (may use the whole runtime)
#   trainers  trainers/          (the runtime and actors)
cmake_minimum_required(VERSION 3.25)
set(levels core cluster remote coll actors trainers)
function(layer_of path out)
  if(path MATCHES "^runtime/(net|cluster)/")
    set(l cluster)
  elseif(path MATCHES "^runtime/remote/")
    set(l remote)
  elseif(path MATCHES "^runtime/coll/")
    set(l coll)
  elseif(path MATCHES "^runtime/proto/" OR path MATCHES "^proto/")
    set(l cluster)  # the control protocol's schema and generated headers
  elseif(path MATCHES "^runtime/")
    set(l core)
  elseif(path MATCHES "^actors/")
    set(l actors)
  elseif(path MATCHES "^trainers/")
    set(l trainers)
  else()
    set(l "")
  endif()
  set(${out} ${l} PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE files RELATIVE ${ROOT} ${ROOT}/runtime/*.hpp ${ROOT}/runtime/*.cpp ${ROOT}/runtime/*.cu
     ${ROOT}/actors/*.hpp ${ROOT}/actors/*.cpp ${ROOT}/actors/*.cu ${ROOT}/trainers/*.hpp ${ROOT}/trainers/*.cpp)
set(bad "")
set(checked 0)
foreach(f ${files})
  layer_of(${f} mine)
  list(FIND levels ${mine} my_level)
  file(STRINGS ${ROOT}/${f} lines REGEX "^#include \"")
  foreach(line ${lines})
    string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" inc "${line}")
    layer_of(${inc} theirs)
    if(theirs STREQUAL "")
      continue()
    endif()
    math(EXPR checked "${checked} + 1")
    list(FIND levels ${theirs} their_level)
    if(their_level GREATER my_level)
      list(APPEND bad "${f} (${mine}) includes ${inc} (${theirs})")
    endif()
  endforeach()
endforeach()
if(bad)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "includes that go up the layers:\n  ${text}")
endif()
list(LENGTH files n)
message(STATUS "layers: ${n} files, ${checked} includes, none upward")
