// tests/test_golden_template.c - conversation templates and label masking vs LLaVA's
// preprocessing run with HF transformers 4.46.3 (tools/golden/gen_templates.py writes
// tests/golden/templates/cases.json: every template x single/multi-turn x with/without media,
// special tokens, unicode, empty turns, truncation, LLaVA's tokenization mismatches, options,
// evaluation prompts, and EMO-LLaMA's attribute prompt rendered by data/attr_prompt.c into the
// first human turn). Every case must match exactly: ids, labels, the mismatch flag, the
// truncation flag, the supervised count, and for prompts the stop string and id.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fileio.h"
#include "../data/attr_prompt.h"
#include "../data/template.h"
#include "../data/tokenizer.h"
#include "test_util.h"

#define TEMPLATES EMOTUNE_SOURCE_DIR "/tests/golden/templates/cases.json"
#define TOKDIR EMOTUNE_SOURCE_DIR "/tests/golden/tokenizer/"

static int g_cases, g_bad;

typedef struct {
    char name[64];
    et_tokenizer *tk;
} tok_entry;
static tok_entry g_toks[8];
static int g_ntoks;

static et_tokenizer *get_tok(const char *file) {
    for (int i = 0; i < g_ntoks; i++)
        if (!strcmp(g_toks[i].name, file)) return g_toks[i].tk;
    ET_ASSERT(g_ntoks < 8 && strlen(file) < 64, "too many tokenizers");
    char path[512];
    snprintf(path, sizeof path, "%s%s", TOKDIR, file);
    et_tokenizer *tk = NULL;
    et_status st = et_tokenizer_load(path, &tk);
    if (st) {
        fprintf(stderr, "  %s\n", et_status_msg(st));
        et_status_free(st);
        return NULL;
    }
    snprintf(g_toks[g_ntoks].name, sizeof g_toks[g_ntoks].name, "%s", file);
    g_toks[g_ntoks++].tk = tk;
    return tk;
}

static void print_ids(const char *what, const int32_t *p, size_t n) {
    fprintf(stderr, "    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 400; i++) fprintf(stderr, " %d", p[i]);
    fprintf(stderr, "\n");
}

// Compare a list against a JSON int array; prints both on a difference.
static bool same_ids(const char *what, const et_ids *got, const cJSON *want) {
    size_t n = (size_t)cJSON_GetArraySize(want);
    bool ok = n == got->len;
    size_t i = 0;
    int32_t *w = calloc(n ? n : 1, sizeof *w);
    for (const cJSON *e = want ? want->child : NULL; e; e = e->next, i++) {
        w[i] = (int32_t)e->valuedouble;
        if (ok && w[i] != got->data[i]) ok = false;
    }
    if (!ok) {
        size_t d = 0;
        while (d < n && d < got->len && w[d] == got->data[d]) d++;
        fprintf(stderr, "    %s differ at index %zu\n", what, d);
        print_ids("want", w, n);
        print_ids("got ", got->data, got->len);
    }
    free(w);
    return ok;
}

static int jint(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v ? (cJSON_IsBool(v) ? cJSON_IsTrue(v) : (int)v->valuedouble) : 0;
}

static void run_case(const cJSON *c) {
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    const char *tokf = cJSON_GetObjectItemCaseSensitive(c, "tokenizer")->valuestring;
    const char *tname = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
    const char *kind = cJSON_GetObjectItemCaseSensitive(c, "kind")->valuestring;
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(c, "opts");
    g_cases++;
    bool ok = true;
    et_tokenizer *tk = get_tok(tokf);
    const et_template *t = et_template_find(tname);
    et_chat_turn *turns = NULL;
    size_t n = 0;
    et_status st =
        et_chat_turns_from_json(cJSON_GetObjectItemCaseSensitive(c, "turns"), name, &turns, &n);
    if (!tk || !t || st) {
        fprintf(stderr, "  case %s: setup failed: %s\n", name, et_status_msg(st));
        et_status_free(st);
        g_bad++;
        CHECK(0, "case %s", name);
        return;
    }
    // the attribute prompt, rendered by data/attr_prompt.c into the first human turn
    char *agr = NULL;
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(c, "attr_prompt");
    if (ja) {
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(ja, "attributes");
        et_attr_prompt ap = {
            .tmpl = cJSON_GetObjectItemCaseSensitive(ja, "template")->valuestring,
            .position =
                !strcmp(cJSON_GetObjectItemCaseSensitive(ja, "position")->valuestring, "suffix")
                    ? ET_ATTR_SUFFIX
                    : ET_ATTR_PREFIX};
        st = et_attr_prompt_turns(&ap, turns, n,
                                  cJSON_GetObjectItemCaseSensitive(at, "age")->valuestring,
                                  cJSON_GetObjectItemCaseSensitive(at, "gender")->valuestring,
                                  cJSON_GetObjectItemCaseSensitive(at, "race")->valuestring, &agr);
        const char *want = cJSON_GetObjectItemCaseSensitive(ja, "rendered")->valuestring;
        if (st || !agr || strcmp(agr, want)) {
            fprintf(stderr, "  case %s: attribute prompt \"%s\", want \"%s\" (%s)\n", name,
                    agr ? agr : "", want, st ? et_status_msg(st) : "");
            ok = false;
        }
        et_status_free(st);
        st = NULL;
    }
    et_template_opts o;
    et_template_opts_init(&o);
    o.max_len = jint(jo, "max_len");
    o.legacy = jint(jo, "legacy");
    o.move_media = jint(jo, "move_media");
    et_ids ids = {0}, labels = {0};
    if (!strcmp(kind, "train")) {
        et_template_info info;
        st = et_template_encode(t, tk, turns, n, &o, &ids, &labels, &info);
        if (st) {
            fprintf(stderr, "  case %s: %s\n", name, et_status_msg(st));
            et_status_free(st);
            ok = false;
        } else {
            ok &= same_ids("ids", &ids, cJSON_GetObjectItemCaseSensitive(c, "ids"));
            ok &= same_ids("labels", &labels, cJSON_GetObjectItemCaseSensitive(c, "labels"));
            int mm = jint(c, "mismatch"), tr = jint(c, "truncated"), ns = jint(c, "n_supervised");
            if (info.mismatch != (mm != 0) || info.truncated != (tr != 0) ||
                info.n_supervised != (size_t)ns || info.has_supervised != (ns > 0)) {
                fprintf(
                    stderr,
                    "    flags: mismatch %d/%d truncated %d/%d n_supervised %zu/%d (got/want)\n",
                    info.mismatch, mm, info.truncated, tr, info.n_supervised, ns);
                ok = false;
            }
        }
    } else {
        et_template_stop stop;
        st = et_template_prompt(t, tk, turns, n, &o, &ids, &stop);
        if (st) {
            fprintf(stderr, "  case %s: %s\n", name, et_status_msg(st));
            et_status_free(st);
            ok = false;
        } else {
            ok &= same_ids("ids", &ids, cJSON_GetObjectItemCaseSensitive(c, "ids"));
            const char *ss = cJSON_GetObjectItemCaseSensitive(c, "stop_str")->valuestring;
            int sid = jint(c, "stop_id");
            if (strcmp(ss, stop.stop_str) || sid != stop.stop_id ||
                stop.eos_id != et_tokenizer_eos_id(tk)) {
                fprintf(stderr, "    stop: \"%s\" %d, want \"%s\" %d\n", stop.stop_str,
                        stop.stop_id, ss, sid);
                ok = false;
            }
        }
    }
    if (!ok) {
        g_bad++;
        fprintf(stderr, "  MISMATCH case %s (%s, %s, %s)\n", name, tname, tokf, kind);
        char *txt = NULL;
        et_status rs = et_template_render(t, tk, turns, n, &o, strcmp(kind, "train") != 0, &txt);
        if (!rs) fprintf(stderr, "    text: %s\n", txt);
        et_status_free(rs);
        free(txt);
    }
    CHECK(ok, "case %s", name);
    et_ids_free(&ids);
    et_ids_free(&labels);
    free(turns);
    free(agr);
}

static void test_golden_cases(void) {
    char *json = NULL;
    size_t len = 0;
    et_status st = et_read_file(TEMPLATES, 64u << 20, &json, &len);
    CHECK(!st, "%s", et_status_msg(st));
    if (st) {
        et_status_free(st);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    CHECK(root, "cases.json does not parse");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    CHECK(jint(root, "version") == 1 && cJSON_IsArray(cases), "bad cases.json");
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) run_case(c);
    printf("template golden: %d cases, %d mismatching\n", g_cases, g_bad);
    CHECK(g_cases >= 40, "only %d cases", g_cases);
    cJSON_Delete(root);
    free(json);
}

int main(void) {
    RUN(test_golden_cases);
    for (int i = 0; i < g_ntoks; i++) et_tokenizer_free(g_toks[i].tk);
    return test_summary();
}
