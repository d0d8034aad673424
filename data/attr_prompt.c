// data/attr_prompt.c - see attr_prompt.h
#include "attr_prompt.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        ET_ASSERT(p, "attribute prompt: out of memory");
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static const char *const k_names[3] = {"age", "gender", "race"};

// Walks tmpl; with vals == NULL only checks. Returns NULL or the error.
static et_status walk(const char *tmpl, const char *what, const char *const *vals, sbuf *out) {
    const char *s = tmpl;
    while (*s) {
        if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
            if (out) sb_put(out, s, 1);
            s += 2;
            continue;
        }
        if (*s == '}')
            return et_err(ET_ERR_INVALID,
                          "%s: a lone '}' at offset %d of \"%s\" (write }} for a brace)", what,
                          (int)(s - tmpl), tmpl);
        if (*s != '{') {
            const char *e = s;
            while (*e && *e != '{' && *e != '}') e++;
            if (out) sb_put(out, s, (size_t)(e - s));
            s = e;
            continue;
        }
        const char *close = strchr(s, '}');
        int k = -1;
        for (int i = 0; close && i < 3; i++)
            if ((size_t)(close - s - 1) == strlen(k_names[i]) &&
                !strncmp(s + 1, k_names[i], strlen(k_names[i])))
                k = i;
        if (k < 0)
            return et_err(ET_ERR_INVALID,
                          "%s: \"%.*s\" in \"%s\" is not a placeholder (use {age}, {gender}, "
                          "{race}; {{ and }} for braces)",
                          what, close ? (int)(close - s + 1) : (int)strlen(s), s, tmpl);
        if (vals) {
            if (!vals[k] || !*vals[k])
                return et_err(ET_ERR_MISSING,
                              "attributes.%s is missing (the attribute prompt uses {%s})",
                              k_names[k], k_names[k]);
            sb_put(out, vals[k], strlen(vals[k]));
        }
        s = close + 1;
    }
    return NULL;
}

et_status et_attr_prompt_check(const char *tmpl, const char *what) {
    if (!tmpl || !*tmpl) return et_err(ET_ERR_INVALID, "%s is empty", what);
    return walk(tmpl, what, NULL, NULL);
}

et_status et_attr_prompt_render(const char *tmpl, const char *age, const char *gender,
                                const char *race, char **out) {
    *out = NULL;
    const char *vals[3] = {age, gender, race};
    sbuf b = {0};
    sb_put(&b, "", 0);
    et_status s = walk(tmpl, "attribute prompt template", vals, &b);
    if (s) {
        free(b.p);
        return s;
    }
    *out = b.p;
    return NULL;
}

// Length of the media placeholders and whitespace that lead value.
static size_t media_lead(const char *v) {
    size_t i = 0, keep = 0;
    for (;;) {
        while (v[i] == ' ' || v[i] == '\n' || v[i] == '\t' || v[i] == '\r') i++;
        if (!strncmp(v + i, "<image>", 7) || !strncmp(v + i, "<video>", 7)) {
            i += 7;
            keep = i;
            continue;
        }
        break;
    }
    if (!keep) return 0;  // no leading media: the prompt goes first
    while (v[keep] == ' ' || v[keep] == '\n' || v[keep] == '\t' || v[keep] == '\r') keep++;
    return keep;
}

et_status et_attr_prompt_apply(const et_attr_prompt *p, const char *value, const char *age,
                               const char *gender, const char *race, char **out) {
    *out = NULL;
    char *pr = NULL;
    ET_TRY(et_attr_prompt_render(p->tmpl, age, gender, race, &pr));
    sbuf b = {0};
    sb_put(&b, "", 0);
    if (p->position == ET_ATTR_SUFFIX) {
        sb_put(&b, value, strlen(value));
        sb_put(&b, " ", 1);
        sb_put(&b, pr, strlen(pr));
    } else {
        const size_t lead = media_lead(value);
        sb_put(&b, value, lead);
        if (lead && !strchr(" \n\t\r", value[lead - 1])) sb_put(&b, "\n", 1);
        sb_put(&b, pr, strlen(pr));
        if (value[lead]) sb_put(&b, " ", 1);
        sb_put(&b, value + lead, strlen(value + lead));
    }
    free(pr);
    *out = b.p;
    return NULL;
}

et_status et_attr_prompt_turns(const et_attr_prompt *p, et_chat_turn *turns, size_t n,
                               const char *age, const char *gender, const char *race,
                               char **owned) {
    *owned = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *f = turns[i].from;
        if (!f || (strcmp(f, "human") && strcmp(f, "user"))) continue;
        if (!turns[i].value) return NULL;  // the template reports it
        ET_TRY(et_attr_prompt_apply(p, turns[i].value, age, gender, race, owned));
        turns[i].value = *owned;
        return NULL;
    }
    return NULL;
}
