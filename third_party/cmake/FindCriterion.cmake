# FindCriterion — the Criterion unit-test framework (Debian: libcriterion-dev). Defines Criterion::Criterion.
find_path(CRITERION_INCLUDE_DIR NAMES criterion/criterion.h)
find_library(CRITERION_LIBRARY NAMES criterion)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Criterion
  REQUIRED_VARS CRITERION_LIBRARY CRITERION_INCLUDE_DIR
  FAIL_MESSAGE "Criterion not found: apt-get install libcriterion-dev (or configure with -DLISA_TESTS=OFF)")
if(Criterion_FOUND AND NOT TARGET Criterion::Criterion)
  add_library(Criterion::Criterion UNKNOWN IMPORTED)
  set_target_properties(Criterion::Criterion PROPERTIES
    IMPORTED_LOCATION "${CRITERION_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CRITERION_INCLUDE_DIR}")
endif()
