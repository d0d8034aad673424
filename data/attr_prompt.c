// data/attr_prompt.c - see attr_prompt.h
#include "attr_prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Output goes to a memory stream (open_memstream): no string builder of our own.
static void put(FILE *m, const char *s, size_t n) {
    if (n) fwrite(s, 1, n, m);
}

static const char *const k_names[3] = {"age", "gender", "race"};

// Walks tmpl; with vals == NULL only checks. Returns NULL or the error.
static et_status walk(const char *tmpl, const char *what, const char *const *vals, FILE *out) {
    const char *s = tmpl;
    while (*s) {
        if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
            if (out) put(out, s, 1);
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
            if (out) put(out, s, (size_t)(e - s));
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
            put(out, vals[k], strlen(vals[k]));
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
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    ET_ASSERT(m, "attribute prompt: out of memory");
    et_status s = walk(tmpl, "attribute prompt template", vals, m);
    fclose(m);
    if (s) {
        free(buf);
        return s;
    }
    *out = buf;
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
    char *pr = NULL, *buf = NULL;
    size_t len = 0;
    ET_TRY(et_attr_prompt_render(p->tmpl, age, gender, race, &pr));
    FILE *m = open_memstream(&buf, &len);
    ET_ASSERT(m, "attribute prompt: out of memory");
    if (p->position == ET_ATTR_SUFFIX) {
        fprintf(m, "%s %s", value, pr);
    } else {
        const size_t lead = media_lead(value);
        put(m, value, lead);
        if (lead && !strchr(" \n\t\r", value[lead - 1])) put(m, "\n", 1);
        fputs(pr, m);
        if (value[lead]) fprintf(m, " %s", value + lead);
    }
    fclose(m);
    free(pr);
    *out = buf;
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
