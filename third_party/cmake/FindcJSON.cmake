# FindcJSON — Dave Gamble's cJSON (Debian: libcjson-dev). Defines cJSON::cJSON.
find_path(CJSON_INCLUDE_DIR NAMES cjson/cJSON.h)
find_library(CJSON_LIBRARY NAMES cjson)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(cJSON
  REQUIRED_VARS CJSON_LIBRARY CJSON_INCLUDE_DIR
  FAIL_MESSAGE "cJSON not found: apt-get install libcjson-dev")
if(cJSON_FOUND AND NOT TARGET cJSON::cJSON)
  add_library(cJSON::cJSON UNKNOWN IMPORTED)
  set_target_properties(cJSON::cJSON PROPERTIES
    IMPORTED_LOCATION "${CJSON_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CJSON_INCLUDE_DIR}")
endif()
