# Warnings and sanitizers for every predflow target, as one INTERFACE target.
add_library(predflow_settings INTERFACE)
target_compile_options(predflow_settings INTERFACE -Wall -Wextra -Wno-unused-parameter)
if(PREDFLOW_SANITIZE)
  target_compile_options(predflow_settings INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(predflow_settings INTERFACE -fsanitize=address,undefined)
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
