// core/json_util.h - checks on JSON text and cJSON trees that cJSON itself does not make.
// defines: et_json_find_duplicate, et_json_check_unique, et_json_too_deep, ET_JSON_MAX_DEPTH,
//          et_json_find_nul_escape, et_utf8_invalid_at
//
// Contract
// - Duplicate keys: cJSON keeps every member of an object, and cJSON_GetObjectItem returns
//   the first, while Python's json (and so every Python tool that reads the same file) keeps
//   the last. A file with a duplicate key therefore means different things to emotune and
//   to Python; emotune refuses it. et_json_find_duplicate walks the whole tree (objects
//   inside arrays inside objects ...) in document order and reports the first member whose
//   key an earlier member of the same object already has, with its path in the form
//   `[3].conversations[1].value` (array indices in brackets, keys after dots; a key at the
//   top level has no leading dot). Keys compare byte-wise (case-sensitive, like Python).
//   Cost: O(n log n) per object of n members (sorting) above a handful of members.
// - Nesting: cJSON refuses input nested more than ET_JSON_MAX_DEPTH (= CJSON_NESTING_LIMIT)
//   arrays/objects deep and reports that as a parse error at the opening bracket.
//   et_json_too_deep(text, n) says whether the first n bytes of text (up to and including
//   the error position) open more than ET_JSON_MAX_DEPTH levels, outside strings, so a
//   caller can say "nesting deeper than 1000 levels" instead of "syntax error".
// - NUL escapes: cJSON decodes "\u0000" into a NUL byte, so the C string it hands back ends
//   there and the rest of the string is silently dropped. et_json_find_nul_escape finds the
//   first "\u0000" escape inside a string of the text (not counting "\\u0000", an escaped
//   backslash followed by "u0000").
// - et_utf8_invalid_at: the offset of the first byte that is not part of well-formed UTF-8
//   (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or n if all is.
// - Thread safety: all functions are pure (no global state).
#ifndef ET_CORE_JSON_UTIL_H
#define ET_CORE_JSON_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define ET_JSON_MAX_DEPTH CJSON_NESTING_LIMIT

// The key of the first duplicate member of any object in root (pointing into root), or NULL
// when every object's keys are distinct. path (may be NULL) gets the member's path,
// truncated to cap bytes.
const char *et_json_find_duplicate(const cJSON *root, char *path, size_t cap);
// NULL, or ET_ERR_FORMAT: `NAME: duplicate key "k" at PATH (...)`.
et_status et_json_check_unique(const cJSON *root, const char *name);
// true when text[0 .. n) opens more than ET_JSON_MAX_DEPTH nested arrays/objects.
bool et_json_too_deep(const char *text, size_t n);
// Offset of the first "\u0000" escape inside a JSON string in text[0 .. n), or n when none.
size_t et_json_find_nul_escape(const char *text, size_t n);
// Offset of the first byte of s[0 .. n) that is not well-formed UTF-8, or n.
size_t et_utf8_invalid_at(const unsigned char *s, size_t n);

#endif
