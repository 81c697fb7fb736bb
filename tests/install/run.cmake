# ctest driver: cmake -DMODE=find_package|add_subdirectory|pkg-config -DSOURCE=... -DBUILD=...
#   -DWORK=... -DMODEL=... [-DLAUNCHER=ccache] -P run.cmake
# Installs the build into a temporary prefix (or uses the source tree), builds the outside
# project in tests/install against it and runs it on a real checkpoint.
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)
set(launcher "")
if(LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
# A sanitized build (make test-sanitize): a consumer of its installed libraries links the
# sanitizer runtimes (add_subdirectory builds libraries of its own and needs nothing).
set(link_args "")
if(LINK_FLAGS)
  set(link_args -DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS})
endif()

if(MODE STREQUAL "add_subdirectory")
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE}/tests/install -B ${WORK}/consumer -G Ninja
                          -DCMAKE_BUILD_TYPE=Release -DNANOVLLM_SOURCE_DIR=${SOURCE} ${launcher}
                          -DNANOVLLM_CARGO_TARGET_DIR=${BUILD}/llguidance  # llguidance built once
                  COMMAND_ERROR_IS_FATAL ANY)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/consumer --target consumer COMMAND_ERROR_IS_FATAL ANY)
  set(consumer ${WORK}/consumer/consumer)
else()
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix} OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
  if(MODE STREQUAL "pkg-config")
    # GNUInstallDirs may pick lib or lib64 or a multiarch folder: find the .pc where it went.
    file(GLOB_RECURSE pc ${prefix}/*/nanovllm.pc)
    get_filename_component(pc_dir "${pc}" DIRECTORY)
    set(ENV{PKG_CONFIG_PATH} ${pc_dir})
    execute_process(COMMAND pkg-config --cflags --libs nanovllm OUTPUT_VARIABLE flags
                    OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
    separate_arguments(flags UNIX_COMMAND "${flags}")
    file(MAKE_DIRECTORY ${WORK}/pc)
    execute_process(COMMAND c++ -O1 ${LINK_FLAGS} ${SOURCE}/tests/install/main.cpp -o ${WORK}/pc/consumer ${flags}
                    COMMAND_ERROR_IS_FATAL ANY)
    set(consumer ${WORK}/pc/consumer)
  else()
    execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE}/tests/install -B ${WORK}/consumer -G Ninja
                            -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${prefix} ${launcher} ${link_args}
                    COMMAND_ERROR_IS_FATAL ANY)
    execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/consumer COMMAND_ERROR_IS_FATAL ANY)
    set(consumer ${WORK}/consumer/consumer)
  endif()
  # Only the public headers are installed: nothing from src/ leaks into the package.
  if(EXISTS ${prefix}/include/engine OR NOT EXISTS ${prefix}/include/nanovllm/llm.h)
    message(FATAL_ERROR "installed headers are not exactly include/nanovllm/")
  endif()
endif()

execute_process(COMMAND ${consumer} ${MODEL} OUTPUT_VARIABLE out COMMAND_ERROR_IS_FATAL ANY)
message("consumer (${MODE}): ${out}")
if(NOT out MATCHES "^Once upon a time, there was a little girl named Lily")
  message(FATAL_ERROR "the consumer did not tell TinyStories' story")
endif()
