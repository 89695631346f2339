# cmake -DMODE=install|subdirectory|packages -DSRC=<troupe source> -DBUILD=<troupe build>
#       -DWORK=<scratch folder> -DCXX=<compiler> [-DFLAGS=<sanitizer flags>] -P run.cmake
#
# troupe as another project sees it:
#   install       `cmake --install` to a fresh prefix; every installed header
#                 compiles on its own from there; troupe.hpp pulls in no
#                 Asio, Cap'n Proto, kj or socket header; examples/external
#                 builds with find_package(troupe), runs (a process actor and a
#                 mesh), and links neither CUDA nor NCCL.
#   subdirectory  examples/external builds troupe's sources along
#                 (add_subdirectory), and runs.
#   packages      cpack makes the troupe and troupe-dev Debian packages, with
#                 what each should hold and depend on.
cmake_minimum_required(VERSION 3.25)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(last_out "${out}" PARENT_SCOPE)
endfunction()

function(build_external where)
  set(args -S ${SRC}/examples/external -B ${WORK}/external-${MODE} -DCMAKE_CXX_COMPILER=${CXX}
      -DCMAKE_BUILD_TYPE=RelWithDebInfo ${ARGN})
  if(FLAGS)
    list(APPEND args "-DCMAKE_CXX_FLAGS=${FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${FLAGS}")
  endif()
  run("configuring examples/external (${where})" ${CMAKE_COMMAND} ${args})
  run("building examples/external (${where})" ${CMAKE_COMMAND} --build ${WORK}/external-${MODE} -j 2 --target external)
  run("running examples/external (${where})" ${WORK}/external-${MODE}/external)
  if(NOT last_out MATCHES "external: remote sum 10 \\(remote in pid [0-9]+, driver pid [0-9]+\\), mesh 3 x 5")
    message(FATAL_ERROR "examples/external printed: ${last_out}")
  endif()
  message(STATUS "${where}: ${last_out}")
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

if(MODE STREQUAL "install")
  set(prefix ${WORK}/prefix)
  run("cmake --install" ${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix})
  # Every installed header on its own: the installed set is closed (no
  # include of a header left in the tree) and each is self-contained.
  file(GLOB_RECURSE headers RELATIVE ${prefix}/include/troupe ${prefix}/include/troupe/*.hpp)
  list(LENGTH headers n)
  if(n LESS 40)
    message(FATAL_ERROR "only ${n} headers installed")
  endif()
  foreach(h ${headers})
    file(WRITE ${WORK}/one.cpp "#include \"${h}\"\n")
    run("compiling installed ${h} alone" ${CXX} -std=c++20 -fsyntax-only -I${prefix}/include/troupe ${WORK}/one.cpp)
  endforeach()
  file(WRITE ${WORK}/one.cpp "#include \"runtime/troupe.hpp\"\n")
  execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -H -I${prefix}/include/troupe ${WORK}/one.cpp
                  ERROR_VARIABLE tree)
  foreach(banned "capnp/" "kj/" "boost/" "sys/socket.h" "netinet/")
    string(FIND "${tree}" "${banned}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "runtime/troupe.hpp includes ${banned}... headers:\n${tree}")
    endif()
  endforeach()
  message(STATUS "${n} installed headers compile alone; troupe.hpp has no Asio, Cap'n Proto, kj or socket header")
  build_external("find_package(troupe)" -DCMAKE_PREFIX_PATH=${prefix})
  execute_process(COMMAND ldd ${WORK}/external-${MODE}/external OUTPUT_VARIABLE libs)
  if(libs MATCHES "libcudart|libnccl|libcublas")
    message(FATAL_ERROR "the external driver links CUDA or NCCL:\n${libs}")
  endif()
elseif(MODE STREQUAL "subdirectory")
  build_external("add_subdirectory(troupe)" -DTROUPE_SOURCE_DIR=${SRC} -DTROUPE_CUDA=OFF)
elseif(MODE STREQUAL "packages")
  run("cpack" ${CMAKE_COMMAND} -E chdir ${BUILD} cpack -G DEB -B ${WORK}/debs)
  file(GLOB debs ${WORK}/debs/*.deb)
  set(found "")
  foreach(deb ${debs})
    run("dpkg-deb -f ${deb}" dpkg-deb -f ${deb} Package Depends)
    set(fields "${last_out}")
    run("dpkg-deb -c ${deb}" dpkg-deb -c ${deb})
    set(files "${last_out}")
    if(fields MATCHES "Package: troupe-dev")
      list(APPEND found troupe-dev)
      foreach(want "include/troupe/runtime/troupe.hpp" "cmake/troupe/troupeConfig.cmake" "libtroupe_core.a"
                   "libtroupe_trainers.a")
        string(FIND "${files}" "${want}" at)
        if(at EQUAL -1)
          message(FATAL_ERROR "troupe-dev lacks ${want}:\n${files}")
        endif()
      endforeach()
      if(NOT fields MATCHES "libcapnp-dev" OR NOT fields MATCHES "libfmt-dev" OR NOT fields MATCHES "pkg-config"
         OR NOT fields MATCHES "troupe \\(=")
        message(FATAL_ERROR "troupe-dev's dependencies: ${fields}")
      endif()
    elseif(fields MATCHES "Package: troupe")
      list(APPEND found troupe)
      foreach(want "bin/troupe" "bin/troupe-daemon" "share/troupe/topologies/fashion_mnist_dp.toml")
        string(FIND "${files}" "${want}" at)
        if(at EQUAL -1)
          message(FATAL_ERROR "troupe lacks ${want}:\n${files}")
        endif()
      endforeach()
      if(NOT fields MATCHES "libfmt9")
        message(FATAL_ERROR "troupe's dependencies: ${fields}")
      endif()
    endif()
  endforeach()
  list(SORT found)
  if(NOT found STREQUAL "troupe;troupe-dev")
    message(FATAL_ERROR "packages made: ${found} (${debs})")
  endif()
  message(STATUS "packages: ${debs}")
else()
  message(FATAL_ERROR "MODE: install, subdirectory or packages")
endif()
