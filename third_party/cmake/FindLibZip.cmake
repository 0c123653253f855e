# FindLibZip — libzip (Debian: libzip-dev), for PyTorch .bin checkpoints (zip + pickle).
# Defines LibZip::LibZip.
find_path(LIBZIP_INCLUDE_DIR NAMES zip.h)
find_library(LIBZIP_LIBRARY NAMES zip)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LibZip
  REQUIRED_VARS LIBZIP_LIBRARY LIBZIP_INCLUDE_DIR
  FAIL_MESSAGE "libzip not found: apt-get install libzip-dev")
if(LibZip_FOUND AND NOT TARGET LibZip::LibZip)
  add_library(LibZip::LibZip UNKNOWN IMPORTED)
  set_target_properties(LibZip::LibZip PROPERTIES
    IMPORTED_LOCATION "${LIBZIP_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LIBZIP_INCLUDE_DIR}")
endif()
