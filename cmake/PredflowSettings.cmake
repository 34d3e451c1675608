# Warnings and sanitizers for every predflow target, as one INTERFACE target.
add_library(predflow_settings INTERFACE)
target_compile_options(predflow_settings INTERFACE -Wall -Wextra -Wno-unused-parameter)

# PREDFLOW_SANITIZE: a list for -fsanitize= ("address,undefined", "thread", ...). ON is the
# old boolean spelling of address,undefined. ThreadSanitizer cannot be combined with
# AddressSanitizer (the runtimes claim the same shadow memory), so that is refused here
# rather than at link time.
set(predflow_sanitizers "${PREDFLOW_SANITIZE}")
if(predflow_sanitizers MATCHES "^(ON|on|On|TRUE|true|YES|yes|1)$")
  set(predflow_sanitizers "address,undefined")
elseif(predflow_sanitizers MATCHES "^(OFF|off|Off|FALSE|false|NO|no|0)?$")
  set(predflow_sanitizers "")
endif()
if(predflow_sanitizers)
  string(REPLACE ";" "," predflow_sanitizers "${predflow_sanitizers}")
  string(REPLACE "," ";" predflow_sanitizer_list "${predflow_sanitizers}")
  foreach(s IN LISTS predflow_sanitizer_list)
    if(NOT s MATCHES "^(address|undefined|thread|leak)$")
      message(FATAL_ERROR "PREDFLOW_SANITIZE: unknown sanitizer '${s}' (address, undefined, thread, leak)")
    endif()
  endforeach()
  if("thread" IN_LIST predflow_sanitizer_list AND "address" IN_LIST predflow_sanitizer_list)
    message(FATAL_ERROR "PREDFLOW_SANITIZE: thread and address cannot be combined")
  endif()
  message(STATUS "predflow: building with -fsanitize=${predflow_sanitizers}")

  # Frame pointers give whole stacks in reports (tools/test adds -O1 -g1 for file:line).
  target_compile_options(predflow_settings INTERFACE -fsanitize=${predflow_sanitizers}
    -fno-omit-frame-pointer)
  target_link_options(predflow_settings INTERFACE -fsanitize=${predflow_sanitizers})
  # GCC's -Wmaybe-uninitialized misfires on instrumented code (libstdc++'s <regex> under
  # ASan at -O1); the normal build keeps the warning for our code.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(predflow_settings INTERFACE -Wno-maybe-uninitialized)
  endif()
endif()

# Node types register themselves at static initialisation. They are compiled into OBJECT
# libraries so that the linker keeps every registration (a static archive would drop
# objects nothing refers to). predflow_add_node(SOURCES ... [LIBRARIES ...]) adds node
# files to predflow::nodes.
function(predflow_add_node)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  target_sources(predflow_nodes PRIVATE ${ARG_SOURCES})
  if(ARG_LIBRARIES)
    target_link_libraries(predflow_nodes PUBLIC ${ARG_LIBRARIES})
  endif()
endfunction()
