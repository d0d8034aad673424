// core/json_util.c - duplicate keys, nesting depth, NUL escapes and UTF-8 checks for JSON.
#include "json_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- duplicate keys ---------------------------------------------------------------

typedef struct {
    const cJSON *item;
    int pos;  // member index in the object
} member;

static const char *key_of(const cJSON *c) { return c->string ? c->string : ""; }

static int cmp_member(const void *a, const void *b) {
    const member *x = a, *y = b;
    int c = strcmp(key_of(x->item), key_of(y->item));
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

// The first member (in document order) of obj whose key an earlier member already has.
static const cJSON *first_dup_member(const cJSON *obj) {
    int n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    if (n < 2) return NULL;
    if (n <= 8) {
        for (const cJSON *c = obj->child->next; c; c = c->next)
            for (const cJSON *e = obj->child; e != c; e = e->next)
                if (!strcmp(key_of(c), key_of(e))) return c;
        return NULL;
    }
    member *m = malloc(sizeof *m * (size_t)n);
    if (!m) return NULL;  // out of memory: the check is skipped, not the parse
    int i = 0;
    for (const cJSON *c = obj->child; c; c = c->next, i++) m[i] = (member){c, i};
    qsort(m, (size_t)n, sizeof *m, cmp_member);
    // a member whose key equals its predecessor's in (key, position) order had an earlier
    // twin; the first of those in document order is the smallest position
    const cJSON *best = NULL;
    int best_pos = n;
    for (i = 1; i < n; i++)
        if (!strcmp(key_of(m[i].item), key_of(m[i - 1].item)) && m[i].pos < best_pos)
            best = m[i].item, best_pos = m[i].pos;
    free(m);
    return best;
}

// Appends ".key" (or "key" at the top), or "[index]" when key is NULL, to path[0 .. *len).
static void path_append(char *path, size_t cap, size_t *len, const char *key, int index) {
    if (!path || *len + 1 >= cap) return;
    int k = key ? snprintf(path + *len, cap - *len, "%s%s", *len ? "." : "", key)
                : snprintf(path + *len, cap - *len, "[%d]", index);
    if (k > 0) *len += (size_t)k < cap - *len ? (size_t)k : cap - *len - 1;
}

static const char *find_dup(const cJSON *j, char *path, size_t cap, size_t len) {
    if (cJSON_IsObject(j)) {
        const cJSON *d = first_dup_member(j);
        // members before the duplicate come first in document order; so does the duplicate's
        // own subtree, which the walk below visits when it reaches d (after reporting d)
        for (const cJSON *c = j->child; c; c = c->next) {
            size_t l = len;
            path_append(path, cap, &l, key_of(c), 0);
            if (c == d) return key_of(c);
            const char *r = find_dup(c, path, cap, l);
            if (r) return r;
            if (path && len < cap) path[len] = '\0';
        }
    } else if (cJSON_IsArray(j)) {
        int i = 0;
        for (const cJSON *c = j->child; c; c = c->next, i++) {
            size_t l = len;
            path_append(path, cap, &l, NULL, i);
            const char *r = find_dup(c, path, cap, l);
            if (r) return r;
            if (path && len < cap) path[len] = '\0';
        }
    }
    return NULL;
}

const char *et_json_find_duplicate(const cJSON *root, char *path, size_t cap) {
    if (path && cap) path[0] = '\0';
    if (path && !cap) path = NULL;
    return root ? find_dup(root, path, cap, 0) : NULL;
}

et_status et_json_check_unique(const cJSON *root, const char *name) {
    char path[256];
    const char *k = et_json_find_duplicate(root, path, sizeof path);
    if (!k) return NULL;
    return et_err(ET_ERR_FORMAT,
                  "%s: duplicate key \"%.100s\" at %s (each key may appear once in an object; "
                  "Python's json would take the last one, cJSON the first: remove one of them)",
                  name, k, path);
}

// ---- text scans ---------------------------------------------------------------------

bool et_json_too_deep(const char *text, size_t n) {
    size_t depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n && text[i]; i++) {
        const char c = text[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > ET_JSON_MAX_DEPTH) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

size_t et_json_find_nul_escape(const char *text, size_t n) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        const char c = text[i];
        if (!in_str) {
            if (c == '"') in_str = true;
        } else if (c == '"') {
            in_str = false;
        } else if (c == '\\') {
            if (i + 5 < n && text[i + 1] == 'u' && text[i + 2] == '0' && text[i + 3] == '0' &&
                text[i + 4] == '0' && text[i + 5] == '0')
                return i;
            i++;  // skip the escaped character (a backslash, a quote, 'u', ...)
        }
    }
    return n;
}

size_t et_utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}
