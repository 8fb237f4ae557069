# Per-ISA compilation (faiss / simdjson style).
#
# lowbit_add_library(NAME SOURCES...) creates a static library lowbit_NAME (alias lowbit::NAME).
# Sources named *_avx2.cpp get AVX2 flags and *_avx512.cpp AVX-512 flags, file by file; every
# other file is compiled for the baseline ISA, so the library runs on any x86-64 CPU and picks
# its level at run time (include/lowbit/core/simd.h).

set(LOWBIT_AVX2_FLAGS -mavx2 -mfma -mbmi2 -mf16c)
set(LOWBIT_AVX512_FLAGS ${LOWBIT_AVX2_FLAGS} -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  set(LOWBIT_X86 ON)
else()
  set(LOWBIT_X86 OFF)
endif()

function(lowbit_isa_sources target)
  foreach(src IN LISTS ARGN)
    if(src MATCHES "_avx512\\.cpp$")
      if(LOWBIT_X86)
        target_sources(${target} PRIVATE ${src})
        set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${LOWBIT_AVX512_FLAGS}")
      endif()
    elseif(src MATCHES "_avx2\\.cpp$")
      if(LOWBIT_X86)
        target_sources(${target} PRIVATE ${src})
        set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${LOWBIT_AVX2_FLAGS}")
      endif()
    else()
      target_sources(${target} PRIVATE ${src})
    endif()
  endforeach()
endfunction()

function(lowbit_add_library name)
  add_library(lowbit_${name} STATIC)
  add_library(lowbit::${name} ALIAS lowbit_${name})
  set_target_properties(lowbit_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME lowbit_${name})
  lowbit_isa_sources(lowbit_${name} ${ARGN})
  target_compile_features(lowbit_${name} PUBLIC cxx_std_20)
  target_include_directories(lowbit_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_options(lowbit_${name} PRIVATE -Wall -Wextra)
  if(LOWBIT_INSTALL AND NOT SKBUILD)
    install(TARGETS lowbit_${name} EXPORT lowbitTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
endfunction()
