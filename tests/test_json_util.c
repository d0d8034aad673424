// tests/test_json_util.c - core/json_util.h: duplicate keys with their paths (small and large
// objects, nested in arrays), the nesting-depth test against cJSON's own limit, "\u0000"
// escapes (escaped backslashes are not escapes), UTF-8 validation.
#include <stdlib.h>
#include <string.h>

#include "../core/json_util.h"
#include "test_util.h"

static void expect_dup(const char *text, const char *key, const char *path) {
    cJSON *j = cJSON_Parse(text);
    CHECK(j, "parse %.60s", text);
    char p[128];
    const char *k = et_json_find_duplicate(j, p, sizeof p);
    if (!key) {
        CHECK(!k, "%.60s: found \"%s\" at %s, want none", text, k, p);
    } else {
        CHECK(k && !strcmp(k, key) && !strcmp(p, path),
              "%.60s: got \"%s\" at %s, want \"%s\" at %s", text, k ? k : "(none)", k ? p : "", key,
              path);
    }
    cJSON_Delete(j);
}

static void test_duplicates(void) {
    expect_dup("{\"a\": 1, \"b\": 2}", NULL, "");
    expect_dup("{\"a\": 1, \"b\": 2, \"a\": 3}", "a", "a");
    expect_dup("{\"A\": 1, \"a\": 2}", NULL, "");  // case-sensitive, as Python
    expect_dup("[{\"x\": 1}, {\"y\": [0, {\"k\": 1, \"k\": 2}]}]", "k", "[1].y[1].k");
    expect_dup(
        "[1, 2, {\"conversations\": [{\"from\": \"h\", \"value\": \"q\"}, {\"value\": "
        "\"a\", \"value\": \"b\"}]}]",
        "value", "[2].conversations[1].value");
    // the first duplicate in document order: "b" inside "a" comes before the outer "c" twin
    expect_dup("{\"a\": {\"b\": 1, \"b\": 2}, \"c\": 1, \"c\": 2}", "b", "a.b");
    expect_dup("{\"c\": 1, \"a\": {\"b\": 1, \"b\": 2}, \"c\": 2}", "b", "a.b");
    // a large object (sorted path): the earliest second occurrence wins
    char *big = malloc(40000);
    size_t k = (size_t)sprintf(big, "{\"obj\": {");
    for (int i = 0; i < 2000; i++) k += (size_t)sprintf(big + k, "\"k%d\": %d, ", i, i);
    sprintf(big + k, "\"z\": 0}}");
    expect_dup(big, NULL, "");
    sprintf(big + k, "\"k1500\": 0, \"k7\": 0}}");
    expect_dup(big, "k1500", "obj.k1500");
    free(big);
    // the status names the file and the path
    cJSON *j = cJSON_Parse("{\"train\": {\"lr\": 1, \"lr\": 2}}");
    et_status s = et_json_check_unique(j, "run.json");
    CHECK(s && strstr(et_status_msg(s), "run.json: duplicate key \"lr\" at train.lr"), "%s",
          et_status_msg(s));
    et_status_free(s);
    cJSON_Delete(j);
}

static void test_depth(void) {
    // cJSON's own verdict decides: n levels parse iff et_json_too_deep says no
    for (int n = ET_JSON_MAX_DEPTH - 1; n <= ET_JSON_MAX_DEPTH + 1; n++) {
        char *t = malloc((size_t)2 * n + 16);
        memset(t, '[', (size_t)n);
        memset(t + n, ']', (size_t)n);
        t[2 * n] = '\0';
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(t, &end, 1);
        const bool deep = et_json_too_deep(t, j ? strlen(t) : (size_t)(end - t) + 1);
        CHECK(!j == deep, "%d levels: cJSON %s, too_deep %d", n, j ? "parses" : "refuses", deep);
        cJSON_Delete(j);
        free(t);
    }
    // brackets inside strings do not count
    CHECK(!et_json_too_deep("[\"[[[[[[[[[[\"]", 14));
}

static void test_nul_escape(void) {
    const char *a = "{\"x\": \"ab\\u0000c\"}";
    CHECK(et_json_find_nul_escape(a, strlen(a)) == 9, "%zu", et_json_find_nul_escape(a, strlen(a)));
    const char *b = "{\"x\": \"ab\\\\u0000c\"}";  // an escaped backslash, then text
    CHECK(et_json_find_nul_escape(b, strlen(b)) == strlen(b));
    const char *c = "{\"x\": \"\\\\\\u0000\"}";  // backslash escape, then a real \u0000
    CHECK(et_json_find_nul_escape(c, strlen(c)) == 9, "%zu", et_json_find_nul_escape(c, strlen(c)));
    const char *d = "{\"x\\u0000\": 1, \"u0000\": \"\\u00001\"}";
    CHECK(et_json_find_nul_escape(d, strlen(d)) == 3);
    const char *e = "{\"x\": \"\\u0001\\u00a0\"}";
    CHECK(et_json_find_nul_escape(e, strlen(e)) == strlen(e));
}

static void test_utf8(void) {
    struct {
        const char *s;
        size_t bad;
    } cases[] = {
        {"plain ascii", 11}, {"caf\xc3\xa9", 5}, {"\xe2\x82\xac!", 4}, {"\xf0\x9f\x98\x80", 4},
        {"a\xff", 1},        {"\xc0\xaf", 0},    {"x\xed\xa0\x80", 1}, {"\xf4\x90\x80\x80", 0},
        {"ab\xe2\x82", 2},   {"\x80", 0},        {"\xe0\x80\xaf", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i].s);
        size_t got = et_utf8_invalid_at((const unsigned char *)cases[i].s, n);
        CHECK(got == cases[i].bad, "case %zu: %zu, want %zu", i, got, cases[i].bad);
    }
}

int main(void) {
    RUN(test_duplicates);
    RUN(test_depth);
    RUN(test_nul_escape);
    RUN(test_utf8);
    return test_summary();
}
