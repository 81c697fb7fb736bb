# `cmake --install` (and `make install PREFIX=...`): the public headers, the static libraries
# with an exported nanovllm::nanovllm target for find_package(nanovllm), a pkg-config file,
# and the nanovllm command.
include(CMakePackageConfigHelpers)

set(nanovllm_libraries nanovllm nanovllm_backend_native)  # the backends, then the stages they use
set(nanovllm_pc_torch "")
if(TARGET nanovllm_backend_torch)  # LibTorch stays where setup-torch.sh put it (see cmake/torch.cmake)
  list(APPEND nanovllm_libraries nanovllm_backend_torch)
  set(nanovllm_pc_torch "-L${NANOVLLM_TORCH_LINKS} -ltorch_cpu -lc10 -ldl -Wl,-rpath,${NANOVLLM_TORCH_LINKS}")
endif()
set(nanovllm_pc_onnx "")
if(TARGET nanovllm_backend_onnx)  # ONNX Runtime stays where setup-onnx.sh put it (see cmake/onnx.cmake)
  list(APPEND nanovllm_libraries nanovllm_backend_onnx)
  set(nanovllm_pc_onnx "${NANOVLLM_ONNXRUNTIME_DIR}/lib/libonnxruntime.so.1 -Wl,-rpath,${NANOVLLM_ONNXRUNTIME_DIR}/lib")
endif()
list(APPEND nanovllm_libraries nanovllm_model nanovllm_constraint nanovllm_tokenizer nanovllm_jinja nanovllm_engine nanovllm_kernels nanovllm_common)
install(TARGETS ${nanovllm_libraries} EXPORT nanovllmTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${NANOVLLM_CARGO_TARGET_DIR}/release/libllguidance.a DESTINATION ${CMAKE_INSTALL_LIBDIR} RENAME libnanovllm_llguidance.a)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/nanovllm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET nanovllm_cli)
  install(TARGETS nanovllm_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(nanovllm_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/nanovllm)
install(EXPORT nanovllmTargets NAMESPACE nanovllm:: DESTINATION ${nanovllm_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/nanovllmConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nanovllmConfig.cmake INSTALL_DESTINATION ${nanovllm_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nanovllmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nanovllmConfig.cmake ${PROJECT_BINARY_DIR}/nanovllmConfigVersion.cmake
        DESTINATION ${nanovllm_cmake_dir})

# pkg-config: the libraries are static, so Libs names all of them (in link order) and OpenMP,
# and Requires brings in PCRE2 and ICU, which the tokenizer links.
# The prefix is found from the .pc file's own place, so `cmake --install --prefix` anywhere works.
string(REPLACE ";" " -l" nanovllm_pc_libs "-l${nanovllm_libraries}")
string(APPEND nanovllm_pc_libs " -lnanovllm_llguidance -lpthread -ldl -lm")  # llguidance (Rust) and what it needs
file(RELATIVE_PATH nanovllm_pc_to_prefix "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(${PROJECT_SOURCE_DIR}/cmake/nanovllm.pc.in ${PROJECT_BINARY_DIR}/nanovllm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nanovllm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
