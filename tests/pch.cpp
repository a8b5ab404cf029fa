// Compiled only to build the test binaries' shared precompiled header (tests/CMakeLists.txt).
