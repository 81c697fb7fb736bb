# llguidance (https://github.com/guidance-ai/llguidance), the grammar engine behind structured
# outputs: a Rust crate with a C API, built by cargo from crates.io at the version pinned in
# third_party/llguidance/Cargo.lock. The build lands under the build directory (cargo's own
# fingerprints make a second build a no-op), niced so that parallel C++ compiles keep moving.
# Its static library is merged into nanovllm_constraint (see merge_archives.cmake), so that an
# installed nanovllm needs no Rust: one more static library of ours, same as the others.
find_program(NANOVLLM_CARGO cargo HINTS $ENV{CARGO_HOME}/bin $ENV{HOME}/.cargo/bin)
if(NOT NANOVLLM_CARGO)
  message(FATAL_ERROR "cargo (Rust >= 1.87) is needed to build llguidance, the structured-output engine. "
                      "Install it with rustup (https://rustup.rs: curl -sSf https://sh.rustup.rs | sh -s -- -y), "
                      "then configure again; Debian 12's own cargo is too old.")
endif()
set(NANOVLLM_CARGO_TARGET_DIR "${PROJECT_BINARY_DIR}/llguidance" CACHE PATH "cargo target dir of llguidance")
set(llg_dir ${PROJECT_SOURCE_DIR}/third_party/llguidance)
set(llg_lib ${NANOVLLM_CARGO_TARGET_DIR}/release/libllguidance.a)
set(llg_include ${NANOVLLM_CARGO_TARGET_DIR}/include)
find_program(NANOVLLM_NICE nice)
set(llg_nice "")
if(NANOVLLM_NICE)
  set(llg_nice ${NANOVLLM_NICE} -n 10)
endif()
add_custom_command(
  OUTPUT ${llg_lib} ${llg_include}/llguidance.h
  COMMAND ${CMAKE_COMMAND} -E env CARGO_TARGET_DIR=${NANOVLLM_CARGO_TARGET_DIR}
          ${llg_nice} ${NANOVLLM_CARGO} build --release --locked -p llguidance
          --manifest-path ${llg_dir}/Cargo.toml
  COMMAND ${CMAKE_COMMAND} -DCARGO=${NANOVLLM_CARGO} -DMANIFEST=${llg_dir}/Cargo.toml -DDEST=${llg_include}
          -P ${PROJECT_SOURCE_DIR}/cmake/llguidance_header.cmake
  DEPENDS ${llg_dir}/Cargo.toml ${llg_dir}/Cargo.lock
  COMMENT "cargo: building llguidance (first time: a few minutes)"
  USES_TERMINAL VERBATIM)
add_custom_target(llguidance_cargo DEPENDS ${llg_lib} ${llg_include}/llguidance.h)
