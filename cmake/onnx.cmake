# ONNX Runtime (scripts/setup-onnx.sh installs it into a cache outside git) as the imported
# target nanovllm_onnxruntime: libonnxruntime.so.1 from PyPI's onnxruntime wheel and the C/C++
# headers from Debian 13's libonnxruntime-dev. The run path points at the cache, so the binaries
# find the library where the setup step put it.
set(NANOVLLM_ONNXRUNTIME_DIR "" CACHE PATH "Where scripts/setup-onnx.sh installed ONNX Runtime (empty: run it)")
include(${CMAKE_CURRENT_LIST_DIR}/setup_script.cmake)
nanovllm_run_setup(NANOVLLM_ONNXRUNTIME_DIR setup-onnx.sh
  "NANOVLLM_WITH_ONNX: scripts/setup-onnx.sh failed (it fetches PyPI's onnxruntime wheel and Debian 13's libonnxruntime-dev)")
set(_ort ${NANOVLLM_ONNXRUNTIME_DIR})
if(NOT EXISTS ${_ort}/lib/libonnxruntime.so.1 OR NOT EXISTS ${_ort}/include/onnxruntime_cxx_api.h)
  message(FATAL_ERROR "NANOVLLM_ONNXRUNTIME_DIR=${_ort} holds no ONNX Runtime (run scripts/setup-onnx.sh)")
endif()
file(GLOB _ort_lib ${_ort}/lib/libonnxruntime.so.1.*)
string(REGEX MATCH "libonnxruntime\\.so\\.([0-9.]+)$" _ "${_ort_lib}")
set(NANOVLLM_ONNXRUNTIME_VERSION "${CMAKE_MATCH_1}")
add_library(nanovllm_onnxruntime SHARED IMPORTED)
set_target_properties(nanovllm_onnxruntime PROPERTIES
  IMPORTED_LOCATION "${_ort}/lib/libonnxruntime.so.1"
  IMPORTED_SONAME "libonnxruntime.so.1"
  INTERFACE_INCLUDE_DIRECTORIES "${_ort}/include"
  INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_ort}/lib")
message(STATUS "ONNX Runtime ${NANOVLLM_ONNXRUNTIME_VERSION} from ${_ort}")
