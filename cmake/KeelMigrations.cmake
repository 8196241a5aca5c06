# Turns a folder of NNN_name.sql files into a C array so a binary carries its own schema.
#   keel_embed_migrations(<target> <c-symbol> <folder>)
# defines `const keel_migration <c-symbol>[]` and `const size_t <c-symbol>_count`.
function(keel_embed_migrations target symbol folder)
  file(GLOB sql_files CONFIGURE_DEPENDS ${folder}/*.sql)
  list(SORT sql_files)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${symbol}.c)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DSYMBOL=${symbol} -DOUT=${out} "-DFILES=${sql_files}"
            -P ${CMAKE_SOURCE_DIR}/cmake/embed_sql.cmake
    DEPENDS ${sql_files} ${CMAKE_SOURCE_DIR}/cmake/embed_sql.cmake
    COMMENT "embedding migrations ${symbol}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()
