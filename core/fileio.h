// core/fileio.h - reading whole files that come from the user (configs, JSON, tokenizers).
// defines: et_read_file
//
// et_read_file(path, max_bytes, &buf, &len): reads the regular file at path into a new
// NUL-terminated buffer (the caller frees it; len excludes the NUL). Errors name the file:
// ET_ERR_MISSING when it does not exist, ET_ERR_IO when it cannot be opened or read or is
// not a regular file, ET_ERR_NOMEM when it is larger than max_bytes (a config that is
// gigabytes long is a mistake, not a config) or memory runs out. len may be NULL.
#ifndef ET_FILEIO_H
#define ET_FILEIO_H

#include <stddef.h>

#include "status.h"

// Size limit for JSON configs (config.json, adapter_config.json, index files).
#define ET_CONFIG_MAX_BYTES ((size_t)64 << 20)

et_status et_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

#endif
