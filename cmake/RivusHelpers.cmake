# Helpers that declare every Rivus target the same way: warnings, sanitizers, include layout.
# Each target is declared whole by one call: nothing is added to a target after its helper.

set(RIVUS_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)

# RIVUS_FUZZ: every library and program carries libFuzzer's coverage instrumentation (without its
# main) and ASan+UBSan; any UBSan report is fatal. The fuzz targets themselves: rivus_add_fuzzer.
set(RIVUS_FUZZ_SANITIZERS address,undefined)
set(RIVUS_FUZZ_COMPILE_OPTIONS -fno-sanitize-recover=undefined -fno-omit-frame-pointer)

function(rivus_apply_common target)
  target_compile_options(${target} PRIVATE ${RIVUS_WARNINGS})
  if(RIVUS_FUZZ)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link,${RIVUS_FUZZ_SANITIZERS}
      ${RIVUS_FUZZ_COMPILE_OPTIONS})
    target_link_options(${target} PRIVATE -fsanitize=${RIVUS_FUZZ_SANITIZERS})
  elseif(RIVUS_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${RIVUS_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${RIVUS_SANITIZE})
  endif()
endfunction()

# rivus_add_component(NAME SRCS ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...] [DEFINITIONS ...])
# Declares the static library rivus_<NAME> with alias rivus::<NAME>: public headers in
# <NAME>/include/rivus/<NAME>/, private sources and headers in <NAME>/src/. A dependency is
# PUBLIC only if a public header of the component includes it. DEFINITIONS are private.
function(rivus_add_component NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;PUBLIC_DEPS;PRIVATE_DEPS;DEFINITIONS" ${ARGN})
  add_library(rivus_${NAME} STATIC ${ARG_SRCS})
  add_library(rivus::${NAME} ALIAS rivus_${NAME})
  set_target_properties(rivus_${NAME} PROPERTIES EXPORT_NAME ${NAME} POSITION_INDEPENDENT_CODE ON)
  target_include_directories(rivus_${NAME}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(rivus_${NAME} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  target_compile_definitions(rivus_${NAME} PRIVATE ${ARG_DEFINITIONS})
  rivus_apply_common(rivus_${NAME})
  set_property(GLOBAL APPEND PROPERTY RIVUS_COMPONENTS rivus_${NAME})
  set_property(GLOBAL APPEND PROPERTY RIVUS_INCLUDE_DIRS ${CMAKE_CURRENT_SOURCE_DIR}/include)
endfunction()

# rivus_add_executable(NAME SRCS ... DEPS ... [INCLUDES ...] [COMPILE_OPTIONS ...] [NEEDS ...]
#                      [ENABLE_EXPORTS] [INSTALL_DESTINATION dir])
# A thin main over libraries. ENABLE_EXPORTS: plugins loaded into it bind to its symbols.
# NEEDS: programs it starts, built with it. INSTALL_DESTINATION: installed there (relative to
# the prefix) with the package.
function(rivus_add_executable NAME)
  cmake_parse_arguments(ARG "ENABLE_EXPORTS" "INSTALL_DESTINATION"
    "SRCS;DEPS;INCLUDES;COMPILE_OPTIONS;NEEDS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS})
  target_include_directories(${NAME} PRIVATE ${ARG_INCLUDES})
  target_compile_options(${NAME} PRIVATE ${ARG_COMPILE_OPTIONS})
  # Bind every symbol at start: a forked replacement worker then pays no lazy-binding faults
  # on its first calls (measured in docs/benchmarks.md, "Crash recovery").
  target_link_options(${NAME} PRIVATE -Wl,-z,now)
  if(ARG_ENABLE_EXPORTS)
    set_target_properties(${NAME} PROPERTIES ENABLE_EXPORTS ON)
  endif()
  if(ARG_NEEDS)
    add_dependencies(${NAME} ${ARG_NEEDS})
  endif()
  rivus_apply_common(${NAME})
  if(ARG_INSTALL_DESTINATION)
    set_property(GLOBAL APPEND PROPERTY RIVUS_PROGRAMS ${NAME})
    set_target_properties(${NAME} PROPERTIES RIVUS_INSTALL_DESTINATION ${ARG_INSTALL_DESTINATION})
  endif()
endfunction()
define_property(TARGET PROPERTY RIVUS_INSTALL_DESTINATION
  BRIEF_DOCS "where rivus_install() puts the program" FULL_DOCS "relative to the prefix")

# rivus_add_test(NAME SRCS ... DEPS ... [LABELS ...] [TIMEOUT seconds] [INTERNALS room ...]
#                [NEEDS target ...] [DEFINITIONS ...])
# One GoogleTest binary, registered with ctest as one test per binary (tests inside a binary
# share fixtures and run in order; the binary is the unit of parallelism for ctest -j). Every
# test sees tests/common/ (the shared helpers); INTERNALS also gives it <room>/src/, the room's
# private headers. NEEDS: programs the test runs, built first.
function(rivus_add_test NAME)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS;INTERNALS;NEEDS;DEFINITIONS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_include_directories(${NAME} PRIVATE ${CMAKE_SOURCE_DIR}/tests/common)
  foreach(room IN LISTS ARG_INTERNALS)
    target_include_directories(${NAME} PRIVATE ${CMAKE_SOURCE_DIR}/${room}/src)
  endforeach()
  target_compile_definitions(${NAME} PRIVATE ${ARG_DEFINITIONS})
  if(ARG_NEEDS)
    add_dependencies(${NAME} ${ARG_NEEDS})
  endif()
  rivus_apply_common(${NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${NAME} COMMAND ${NAME})
  # Sanitizer builds compile only what they run: `rivus_unit_tests` / `rivus_ring_tests`.
  foreach(label IN LISTS ARG_LABELS)
    set_property(GLOBAL APPEND PROPERTY RIVUS_TESTS_${label} ${NAME})
  endforeach()
  foreach(src IN LISTS ARG_SRCS)
    get_filename_component(abs ${src} ABSOLUTE)
    set_property(GLOBAL APPEND PROPERTY RIVUS_TEST_SOURCES ${abs})
  endforeach()
  set_tests_properties(${NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
    ENVIRONMENT "RIVUS_BIN=${CMAKE_BINARY_DIR}/bin;RIVUS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# rivus_add_plugin(NAME SRCS ...): a plugin for `rivus run --plugin`. It links only the plugin
# API headers (rivus::plugin_api): the registry it registers into is the host binary's.
function(rivus_add_plugin NAME)
  cmake_parse_arguments(ARG "" "" "SRCS" ${ARGN})
  add_library(${NAME} MODULE ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE rivus::plugin_api)
  rivus_apply_common(${NAME})
endfunction()

# rivus_add_benchmark(NAME SRCS ... DEPS ... [INTERNALS room ...])
function(rivus_add_benchmark NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;INTERNALS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
  foreach(room IN LISTS ARG_INTERNALS)
    target_include_directories(${NAME} PRIVATE ${CMAKE_SOURCE_DIR}/${room}/src)
  endforeach()
  rivus_apply_common(${NAME})
endfunction()

# rivus_add_fuzzer(NAME SRCS ... DEPS ... [INTERNALS room ...])  (RIVUS_FUZZ builds only)
# A libFuzzer target (LLVMFuzzerTestOneInput; libFuzzer's main), linked with ASan+UBSan and part
# of the build target `rivus_fuzzers`. INTERNALS: the room's private headers, as for tests.
function(rivus_add_fuzzer NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;INTERNALS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS})
  foreach(room IN LISTS ARG_INTERNALS)
    target_include_directories(${NAME} PRIVATE ${CMAKE_SOURCE_DIR}/${room}/src)
  endforeach()
  target_compile_options(${NAME} PRIVATE ${RIVUS_WARNINGS}
    -fsanitize=fuzzer,${RIVUS_FUZZ_SANITIZERS} ${RIVUS_FUZZ_COMPILE_OPTIONS})
  target_link_options(${NAME} PRIVATE -fsanitize=fuzzer,${RIVUS_FUZZ_SANITIZERS})
  set_property(GLOBAL APPEND PROPERTY RIVUS_FUZZERS ${NAME})
endfunction()

# Call once after every test is declared: one build target per test label, and a check that
# every *_test.cc under tests/ belongs to a test binary (a suite must not vanish because its file
# moved and no CMakeLists.txt names it any more).
function(rivus_finish_tests)
  foreach(label unit ring integration)
    get_property(tests GLOBAL PROPERTY RIVUS_TESTS_${label})
    if(tests)
      add_custom_target(rivus_${label}_tests DEPENDS ${tests})
    endif()
  endforeach()
  get_property(registered GLOBAL PROPERTY RIVUS_TEST_SOURCES)
  file(GLOB_RECURSE on_disk CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/*_test.cc)
  set(orphans "")
  foreach(file IN LISTS on_disk)
    if(NOT file IN_LIST registered)
      list(APPEND orphans ${file})
    endif()
  endforeach()
  if(orphans)
    list(JOIN orphans "\n  " text)
    message(FATAL_ERROR "test sources that no rivus_add_test() builds:\n  ${text}")
  endif()
endfunction()
