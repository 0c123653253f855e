# FindOpenBLASLib — OpenBLAS with its CBLAS header (Debian: libopenblas-openmp-dev, preferred, or
# libopenblas-dev). Defines OpenBLASLib::OpenBLASLib and OPENBLAS_VARIANT (openmp, pthread or
# unknown). We need cblas_sgemm only; the openblas header is preferred so that
# openblas_set_num_threads is available.
#
# Why the OpenMP build first: the CPU backend's own loops are OpenMP. With the pthread build,
# OpenBLAS's worker threads keep spinning (sched_yield) for a while after every sgemm while our
# OpenMP team runs, and our team spins after its region while OpenBLAS runs: on 2 cores that put
# ~20 % of the SAM ViT-B encoder's samples in the scheduler and cost ~1.4x in wall time
# (bench/RESULTS.md). The OpenMP build runs its sgemm on the same libgomp pool, so the two never
# compete. The directories are HINTS so that they win over Debian's alternatives symlink in
# /usr/lib/<triplet> (which may point at either build); the binaries get a RPATH to the chosen one.
set(_lisa_blas_triplets x86_64-linux-gnu aarch64-linux-gnu)
set(_lisa_blas_inc_hints "")
set(_lisa_blas_lib_hints "")
foreach(variant openmp pthread)
  foreach(t ${_lisa_blas_triplets})
    list(APPEND _lisa_blas_inc_hints /usr/include/${t}/openblas-${variant})
    list(APPEND _lisa_blas_lib_hints /usr/lib/${t}/openblas-${variant})
  endforeach()
endforeach()
# the header and the library must come from the same variant: take the library first, then the
# header next to its variant if there is one
find_library(OPENBLAS_LIBRARY NAMES openblas HINTS ${_lisa_blas_lib_hints})
set(OPENBLAS_VARIANT unknown)
if(OPENBLAS_LIBRARY MATCHES "openblas-(openmp|pthread)/")
  set(OPENBLAS_VARIANT ${CMAKE_MATCH_1})
  get_filename_component(_lisa_blas_libdir "${OPENBLAS_LIBRARY}" DIRECTORY)
  get_filename_component(_lisa_blas_triplet "${_lisa_blas_libdir}" DIRECTORY)
  get_filename_component(_lisa_blas_triplet "${_lisa_blas_triplet}" NAME)
  find_path(OPENBLAS_INCLUDE_DIR NAMES cblas.h
    HINTS /usr/include/${_lisa_blas_triplet}/openblas-${OPENBLAS_VARIANT} ${_lisa_blas_inc_hints}
    PATHS /usr/include/openblas /usr/include)
else()
  find_path(OPENBLAS_INCLUDE_DIR NAMES cblas.h HINTS ${_lisa_blas_inc_hints} PATHS /usr/include/openblas /usr/include)
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenBLASLib
  REQUIRED_VARS OPENBLAS_LIBRARY OPENBLAS_INCLUDE_DIR
  FAIL_MESSAGE "OpenBLAS not found: apt-get install libopenblas-openmp-dev")
if(OpenBLASLib_FOUND AND NOT TARGET OpenBLASLib::OpenBLASLib)
  add_library(OpenBLASLib::OpenBLASLib UNKNOWN IMPORTED)
  set_target_properties(OpenBLASLib::OpenBLASLib PROPERTIES
    IMPORTED_LOCATION "${OPENBLAS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OPENBLAS_INCLUDE_DIR}")
endif()
unset(_lisa_blas_triplets)
unset(_lisa_blas_inc_hints)
unset(_lisa_blas_lib_hints)
