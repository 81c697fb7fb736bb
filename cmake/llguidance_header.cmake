# Copies llguidance.h from the crate's source (where cargo unpacked it) next to the library,
# so the C++ side includes the header of exactly the version it links.
execute_process(COMMAND ${CARGO} metadata --format-version 1 --locked --manifest-path ${MANIFEST}
                OUTPUT_VARIABLE meta COMMAND_ERROR_IS_FATAL ANY)
string(JSON n LENGTH "${meta}" packages)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON name GET "${meta}" packages ${i} name)
  if(name STREQUAL "llguidance")
    string(JSON manifest GET "${meta}" packages ${i} manifest_path)
    get_filename_component(crate_dir "${manifest}" DIRECTORY)
    file(COPY ${crate_dir}/llguidance.h DESTINATION ${DEST})
    return()
  endif()
endforeach()
message(FATAL_ERROR "cargo metadata lists no llguidance package")
