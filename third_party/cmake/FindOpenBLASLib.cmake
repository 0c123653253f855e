# FindOpenBLASLib — OpenBLAS with its CBLAS header (Debian: libopenblas-dev).
# Defines OpenBLASLib::OpenBLASLib. We need cblas_sgemm only; the openblas header is preferred so
# that openblas_set_num_threads is available.
find_path(OPENBLAS_INCLUDE_DIR NAMES cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/aarch64-linux-gnu/openblas-pthread
        /usr/include/openblas /usr/include)
find_library(OPENBLAS_LIBRARY NAMES openblas
  PATHS /usr/lib/x86_64-linux-gnu/openblas-pthread /usr/lib/aarch64-linux-gnu/openblas-pthread)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenBLASLib
  REQUIRED_VARS OPENBLAS_LIBRARY OPENBLAS_INCLUDE_DIR
  FAIL_MESSAGE "OpenBLAS not found: apt-get install libopenblas-dev")
if(OpenBLASLib_FOUND AND NOT TARGET OpenBLASLib::OpenBLASLib)
  add_library(OpenBLASLib::OpenBLASLib UNKNOWN IMPORTED)
  set_target_properties(OpenBLASLib::OpenBLASLib PROPERTIES
    IMPORTED_LOCATION "${OPENBLAS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OPENBLAS_INCLUDE_DIR}")
endif()
