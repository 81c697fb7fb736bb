# LibTorch from PyPI's torch wheel (scripts/setup-torch.sh installs it into a cache outside
# git) as the imported target nanovllm_libtorch: the wheel's include/ and two libraries.
# find_package(Torch) with the wheel's own TorchConfig fails on a machine without the CUDA
# toolkit, and only libtorch_cpu + libc10 are needed to build: libtorch_cuda.so is loaded at run
# time for --device cuda (src/backends/torch/torch_runner.cpp).
set(NANOVLLM_TORCH_DIR "" CACHE PATH "Where scripts/setup-torch.sh installed the torch wheel (empty: run it)")
include(${CMAKE_CURRENT_LIST_DIR}/setup_script.cmake)
nanovllm_run_setup(NANOVLLM_TORCH_DIR setup-torch.sh
  "NANOVLLM_WITH_TORCH: scripts/setup-torch.sh failed (it installs PyPI's torch wheel)")
set(_torch ${NANOVLLM_TORCH_DIR}/torch)
if(NOT EXISTS ${_torch}/lib/libtorch_cpu.so OR NOT EXISTS ${_torch}/include/ATen/ATen.h)
  message(FATAL_ERROR "NANOVLLM_TORCH_DIR=${NANOVLLM_TORCH_DIR} holds no torch wheel (run scripts/setup-torch.sh)")
endif()
file(GLOB _torch_dist ${NANOVLLM_TORCH_DIR}/torch-*.dist-info)
string(REGEX MATCH "torch-([^/]*)\\.dist-info$" _ "${_torch_dist}")
set(NANOVLLM_TORCH_VERSION "${CMAKE_MATCH_1}")
# The run path gets a folder of links to exactly the libraries needed (libtorch_cpu's $ORIGIN
# run path then finds libcudart and libcupti beside it), not torch/lib itself: that holds an
# older libgomp.so.1 (no GOMP_5.1) that would shadow the compiler's for our OpenMP kernels.
set(NANOVLLM_TORCH_LINKS ${PROJECT_BINARY_DIR}/libtorch CACHE INTERNAL "links to the LibTorch libraries (install.cmake)")
file(MAKE_DIRECTORY ${NANOVLLM_TORCH_LINKS})
file(GLOB _cuda_runtime ${NANOVLLM_TORCH_DIR}/nvidia/*/lib/libcudart.so.* ${NANOVLLM_TORCH_DIR}/nvidia/*/lib/libcupti.so.*)
foreach(lib ${_torch}/lib/libtorch_cpu.so ${_torch}/lib/libc10.so ${_cuda_runtime})
  get_filename_component(name ${lib} NAME)
  file(CREATE_LINK ${lib} ${NANOVLLM_TORCH_LINKS}/${name} SYMBOLIC)
endforeach()
add_library(nanovllm_libtorch INTERFACE IMPORTED)
set_target_properties(nanovllm_libtorch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_torch}/include"
  INTERFACE_LINK_LIBRARIES "${NANOVLLM_TORCH_LINKS}/libtorch_cpu.so;${NANOVLLM_TORCH_LINKS}/libc10.so;${CMAKE_DL_LIBS}"
  INTERFACE_LINK_OPTIONS "LINKER:-rpath,${NANOVLLM_TORCH_LINKS}")
message(STATUS "LibTorch ${NANOVLLM_TORCH_VERSION} from ${NANOVLLM_TORCH_DIR}")
