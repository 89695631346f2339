# ASan+UBSan and TSan builds: one option each, mutually exclusive.
if(TROUPE_ASAN AND TROUPE_TSAN)
  message(FATAL_ERROR "TROUPE_ASAN and TROUPE_TSAN cannot be combined; configure two build folders")
endif()
set(TROUPE_SANITIZER_STATUS "none")
set(TROUPE_SANITIZER_FLAGS "")  # for projects built against this one in the tests
if(TROUPE_ASAN)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:${_san}>")  # host code; nvcc takes none of them
  add_link_options(${_san})
  set(TROUPE_SANITIZER_STATUS "address,undefined")
  string(JOIN " " TROUPE_SANITIZER_FLAGS ${_san})
elseif(TROUPE_TSAN)
  set(_san -fsanitize=thread -fno-omit-frame-pointer)
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:${_san}>")
  add_link_options(${_san})
  set(TROUPE_SANITIZER_STATUS "thread")
  string(JOIN " " TROUPE_SANITIZER_FLAGS ${_san})
endif()
