# hoptrace_bpf_object(<name> <src.bpf.c> [DEFINES D...])
#
# Compiles one BPF program (clang -target bpf, CO-RE against the pinned
# bpf/vmlinux.h), generates its libbpf skeleton with bpftool, and exposes an
# INTERFACE target <name>_skel whose include directory holds <name>.skel.h.
# DEFINES: -D flags, for a second build of the same source (a variant for
# kernels that lack a feature, chosen at start-up by probing).
find_program(BPF_CLANG NAMES clang clang-14 clang-16 clang-19 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

function(hoptrace_bpf_object name src)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "DEFINES")
  list(TRANSFORM arg_DEFINES PREPEND -D)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  file(GLOB bpf_headers CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86
            -Wall -Wno-gnu-variable-sized-type-not-at-end -Wno-unused-function
            -I${CMAKE_CURRENT_SOURCE_DIR} -I${PROJECT_SOURCE_DIR}/bpf ${arg_DEFINES}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
    DEPENDS ${src} ${bpf_headers}
    COMMENT "BPF ${src}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out_dir} ${CMAKE_CURRENT_SOURCE_DIR})
endfunction()
