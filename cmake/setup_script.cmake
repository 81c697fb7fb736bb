# nanovllm_run_setup(VAR SCRIPT FAILURE): a dependency that a script of ours installs into a cache
# outside git (scripts/setup-torch.sh, scripts/setup-onnx.sh). The script runs once, at the first
# configure, and the folder it prints is kept in the cache variable VAR; a user who set VAR to
# their own installation skips it. FAILURE is the error when the script fails.
function(nanovllm_run_setup var script failure)
  if(${var})
    return()
  endif()
  execute_process(COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/${script}
                  OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${failure}")
  endif()
  set(${var} ${dir} CACHE PATH "Where scripts/${script} installed it" FORCE)
endfunction()
