# tidal_add_library(NAME SOURCES ... DEPS ...): one library per component, includes rooted at src/.
function(tidal_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  if(TIDAL_SANITIZE AND name IN_LIST TIDAL_SANITIZE_O1_TARGETS)
    target_compile_options(${name} PRIVATE -O1)
  endif()
endfunction()

# Every test binary reuses one precompiled header: GoogleTest, nlohmann-json and the standard
# headers the tests use. Parsing these is most of a test file's compile time (about 4 s each of
# ~60 files, in each of the two trees the suite builds). TIDAL_PCH=OFF turns it off.
option(TIDAL_PCH "Precompiled headers for the test binaries" ON)
set(TIDAL_TEST_PCH_HEADERS
    <gtest/gtest.h> <nlohmann/json.hpp> <algorithm> <atomic> <chrono> <cmath> <cstdint> <cstring>
    <filesystem> <fstream> <functional> <map> <memory> <mutex> <optional> <random> <set>
    <sstream> <string> <thread> <unordered_map> <vector>)
# Test code itself is compiled at -O1 in Release: a third less compile time than -O3, and the
# tests spend their time in the libraries, which stay at -O3.
set(TIDAL_TEST_OPTIONS $<$<CONFIG:Release>:-O1>)
if(TIDAL_PCH)
  add_library(tidal_test_pch OBJECT ${PROJECT_SOURCE_DIR}/tests/pch.cpp)
  target_link_libraries(tidal_test_pch PRIVATE GTest::gtest nlohmann_json::nlohmann_json)
  target_compile_options(tidal_test_pch PRIVATE ${TIDAL_TEST_OPTIONS})
  target_precompile_headers(tidal_test_pch PRIVATE ${TIDAL_TEST_PCH_HEADERS})
endif()

# tidal_add_test(NAME SOURCES ... DEPS ... [LABELS ...]): a GoogleTest binary registered with CTest,
# built with the shared precompiled header above. Every test gets the label "unit" unless LABELS
# says otherwise; the sanitizer pass runs "unit", so a tree configured with TIDAL_UNIT_TESTS_ONLY
# (build.sh asan) does not build the others.
function(tidal_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(TIDAL_UNIT_TESTS_ONLY AND NOT "unit" IN_LIST ARG_LABELS)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  if(TIDAL_SANITIZE AND name IN_LIST TIDAL_SANITIZE_O1_TARGETS)
    # clang refuses a precompiled header built at another -O level: this one gets its own.
    target_compile_options(${name} PRIVATE -O1)
    if(TIDAL_PCH)
      target_precompile_headers(${name} PRIVATE ${TIDAL_TEST_PCH_HEADERS})
    endif()
  else()
    target_compile_options(${name} PRIVATE ${TIDAL_TEST_OPTIONS})
    if(TIDAL_PCH)
      target_precompile_headers(${name} REUSE_FROM tidal_test_pch)
    endif()
  endif()
  gtest_discover_tests(${name} PROPERTIES LABELS "${ARG_LABELS}" DISCOVERY_TIMEOUT 60)
endfunction()
include(GoogleTest)
