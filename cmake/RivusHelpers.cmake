# Helpers that declare every Rivus target the same way: warnings, sanitizers, include layout.

set(RIVUS_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)

function(rivus_apply_common target)
  target_compile_options(${target} PRIVATE ${RIVUS_WARNINGS})
  if(RIVUS_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${RIVUS_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${RIVUS_SANITIZE})
  endif()
endfunction()

# rivus_add_component(NAME SRCS ... PUBLIC_DEPS ... PRIVATE_DEPS ...)
# Declares library rivus_<NAME> with alias rivus::<NAME>; public headers live in
# <NAME>/include/rivus/<NAME>/, private sources and headers in <NAME>/src/.
function(rivus_add_component NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(rivus_${NAME} STATIC ${ARG_SRCS})
  add_library(rivus::${NAME} ALIAS rivus_${NAME})
  set_target_properties(rivus_${NAME} PROPERTIES EXPORT_NAME ${NAME} POSITION_INDEPENDENT_CODE ON)
  target_include_directories(rivus_${NAME}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(rivus_${NAME} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  rivus_apply_common(rivus_${NAME})
endfunction()

# rivus_add_executable(NAME SRCS ... DEPS ...)
function(rivus_add_executable NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS})
  # Bind every symbol at start: a forked replacement worker then pays no lazy-binding faults
  # on its first calls (measured in docs/benchmarks.md, "Crash recovery").
  target_link_options(${NAME} PRIVATE -Wl,-z,now)
  rivus_apply_common(${NAME})
endfunction()

# rivus_add_test(NAME SRCS ... DEPS ... [LABELS ...] [TIMEOUT seconds])
# One GoogleTest binary, registered with ctest as one test per binary (tests inside a binary
# share fixtures and run in order; the binary is the unit of parallelism for ctest -j).
function(rivus_add_test NAME)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  rivus_apply_common(${NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${NAME} COMMAND ${NAME})
  # Sanitizer builds compile only what they run: `rivus_unit_tests` / `rivus_ring_tests`.
  foreach(label IN LISTS ARG_LABELS)
    set_property(GLOBAL APPEND PROPERTY RIVUS_TESTS_${label} ${NAME})
  endforeach()
  set_tests_properties(${NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
    ENVIRONMENT "RIVUS_BIN=${CMAKE_BINARY_DIR}/bin;RIVUS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# rivus_add_benchmark(NAME SRCS ... DEPS ...)
function(rivus_add_benchmark NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
  rivus_apply_common(${NAME})
endfunction()

# Call once after every test is declared: one build target per test label.
function(rivus_add_label_targets)
  foreach(label unit ring integration)
    get_property(tests GLOBAL PROPERTY RIVUS_TESTS_${label})
    if(tests)
      add_custom_target(rivus_${label}_tests DEPENDS ${tests})
    endif()
  endforeach()
endfunction()
