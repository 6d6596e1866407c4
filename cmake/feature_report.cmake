# Prints one line per optional feature, like llm.c's build: "✓ name" when found, "✗ name" when not.
function(ddpm_feature label found_var)
  if(${found_var})
    message(STATUS "✓ ${label}")
  else()
    message(STATUS "✗ ${label}")
  endif()
endfunction()
