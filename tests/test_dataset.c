// tests/test_dataset.c - LLaVA-format instruction datasets: the FABA-Instruct-style fixtures
// (JSON array and JSONL, train and eval layouts, inline and .npy landmarks), the catalogue
// of bad inputs with their exact messages, a 20,000-sample file indexed with bounded memory
// and read concurrently, and mixtures (counts, determinism).
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../data/dataset.h"
#include "../data/npy.h"
#include "test_util.h"

#define DS_DIR EMOTUNE_SOURCE_DIR "/tests/golden/dataset/"
#define MEDIA DS_DIR "media"

static char g_tmp[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ET_ASSERT(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static bool str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool ends_with(const char *s, const char *suffix) {
    if (!s) return false;
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool sample_equal(const et_sample *a, const et_sample *b) {
    if (!str_eq(a->id, b->id) || !str_eq(a->image, b->image) || !str_eq(a->video, b->video) ||
        !str_eq(a->landmark_path, b->landmark_path) || !str_eq(a->label, b->label) ||
        !str_eq(a->gpt4, b->gpt4) || !str_eq(a->source, b->source) || !str_eq(a->age, b->age) ||
        !str_eq(a->gender, b->gender) || !str_eq(a->race, b->race) ||
        a->has_attributes != b->has_attributes || a->n_landmark != b->n_landmark ||
        a->n_turns != b->n_turns || a->index != b->index)
        return false;
    if (a->n_landmark && memcmp(a->landmark, b->landmark, (size_t)a->n_landmark * 4) != 0)
        return false;
    for (int i = 0; i < a->n_turns; i++)
        if (a->turns[i].role != b->turns[i].role || strcmp(a->turns[i].from, b->turns[i].from) ||
            strcmp(a->turns[i].value, b->turns[i].value))
            return false;
    return true;
}

static float *read_npy(const char *path, int64_t *n) {
    float *d;
    int nd;
    int64_t sh[ET_NPY_MAX_DIMS];
    et_status s = et_npy_read_f32(path, &d, &nd, sh);
    ET_ASSERT(!s, "%s", et_status_msg(s));
    *n = 1;
    for (int i = 0; i < nd; i++) *n *= sh[i];
    return d;
}

static et_dataset *open_ok(const char *path, const et_dataset_opts *o) {
    et_dataset *ds = NULL;
    et_status s = et_dataset_open(path, o, &ds);
    CHECK(s == NULL, "%s", et_status_msg(s));
    et_status_free(s);
    return ds;
}

static void test_train_array(void) {
    et_dataset_opts o = {.data_root = MEDIA, .require_answer = true, .landmark_dim = 136};
    et_dataset *ds = open_ok(DS_DIR "train.json", &o);
    if (!ds) return;
    CHECK(et_dataset_size(ds) == 3, "size %lld", (long long)et_dataset_size(ds));
    int64_t n1, n2;
    float *lm1 = read_npy(MEDIA "/landmarks/face1.npy", &n1);
    float *lm2 = read_npy(MEDIA "/landmarks/face2.npy", &n2);
    et_sample s;
    et_status st = et_dataset_get(ds, 0, &s);
    CHECK(st == NULL, "%s", et_status_msg(st));
    CHECK(str_eq(s.id, "faba_000001") && str_eq(s.source, "AffectNet"), "id %s", s.id);
    CHECK(ends_with(s.image, "/tests/golden/dataset/media/images/face1.jpg") && s.image[0] == '/',
          "image %s", s.image);
    CHECK(ends_with(s.landmark_path, "/media/landmarks/face1.npy"), "%s", s.landmark_path);
    CHECK(s.n_landmark == 136 && n1 == 136 && memcmp(s.landmark, lm1, 136 * 4) == 0,
          "landmark values");
    CHECK(s.n_turns == 2 && s.turns[0].role == ET_ROLE_USER &&
              s.turns[1].role == ET_ROLE_ASSISTANT && str_eq(s.turns[0].from, "human"),
          "turns");
    CHECK(str_eq(s.turns[0].value, "What is the emotion of this face?\n<image>"), "%s",
          s.turns[0].value);
    CHECK(str_eq(et_sample_answer(&s),
                 "The person looks happy: the cheeks are raised and the lip corners pulled up in a "
                 "broad smile (\"AU6+AU12\")."),
          "%s", et_sample_answer(&s));
    CHECK(!s.label && !s.gpt4 && !s.video && !s.has_attributes && isnan(s.age_years), "absent");
    et_sample_free(&s);
    CHECK(s.id == NULL && s.turns == NULL, "free zeroes");
    st = et_dataset_get(ds, 1, &s);
    CHECK(st == NULL, "%s", et_status_msg(st));
    CHECK(
        s.n_turns == 4 && str_eq(s.turns[3].value, "Sadness \xe2\x80\x94 subtle, but consistent."),
        "unicode escape");
    CHECK(s.n_landmark == 136 && memcmp(s.landmark, lm2, 136 * 4) == 0, "landmark 2");
    et_sample_free(&s);
    st = et_dataset_get(ds, 2, &s);  // an unknown nested field holding "]}" is ignored
    CHECK(st == NULL && str_eq(s.id, "faba_000003") && s.n_turns == 2, "%s", et_status_msg(st));
    et_sample_free(&s);
    st = et_dataset_get(ds, 3, &s);
    CHECK(et_status_code(st) == ET_ERR_INVALID && strstr(et_status_msg(st), "out of range"), "%s",
          et_status_msg(st));
    et_status_free(st);
    free(lm1);
    free(lm2);
    et_dataset_close(ds);
}

static void test_array_vs_jsonl(void) {
    et_dataset_opts o = {.data_root = MEDIA, .require_answer = true, .landmark_dim = 136};
    et_dataset *a = open_ok(DS_DIR "train.json", &o);
    et_dataset *b = open_ok(DS_DIR "train.jsonl", &o);
    if (a && b) {
        CHECK(et_dataset_size(a) == et_dataset_size(b), "sizes");
        for (int64_t i = 0; i < et_dataset_size(a); i++) {
            et_sample x, y;
            et_status s1 = et_dataset_get(a, i, &x), s2 = et_dataset_get(b, i, &y);
            CHECK(!s1 && !s2 && sample_equal(&x, &y), "sample %lld differs", (long long)i);
            et_sample_free(&x);
            et_sample_free(&y);
        }
    }
    et_dataset_close(a);
    et_dataset_close(b);
    // the same text from memory, detected as JSONL by content (no extension)
    char *text;
    size_t len;
    FILE *f = fopen(DS_DIR "train.jsonl", "rb");
    ET_ASSERT(f, "open");
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    text = malloc(len);
    ET_ASSERT(fread(text, 1, len, f) == len, "read");
    fclose(f);
    et_dataset *m = NULL;
    et_status s = et_dataset_open_memory(text, len, "mem", &o, &m);
    CHECK(s == NULL && et_dataset_size(m) == 3, "%s", et_status_msg(s));
    et_status_free(s);
    free(text);
    et_dataset_close(m);
}

static void test_eval_layout(void) {
    et_dataset_opts o = {.data_root = MEDIA, .landmark_dim = 136};
    et_dataset *ds = open_ok(DS_DIR "eval.json", &o);
    if (!ds) return;
    const char *labels[] = {"Happiness", "3", "4, 9, 15"};
    for (int i = 0; i < 3; i++) {
        et_sample s;
        et_status st = et_dataset_get(ds, i, &s);
        CHECK(st == NULL, "%s", et_status_msg(st));
        CHECK(str_eq(s.label, labels[i]), "label %s", s.label);
        CHECK(s.gpt4 && s.n_turns == 0 && s.n_landmark == 136 && s.image, "eval fields");
        et_sample_free(&s);
    }
    et_dataset_close(ds);
    // training on an eval file: every sample lacks conversations
    o.require_answer = true;
    ds = open_ok(DS_DIR "eval.json", &o);
    et_sample s;
    et_status st = et_dataset_get(ds, 1, &s);
    CHECK(st && strstr(et_status_msg(st),
                       "eval.json:8: sample 1: no 'conversations' (required "
                       "for training)"),
          "%s", et_status_msg(st));
    et_status_free(st);
    et_dataset_close(ds);
}

static void test_inline_landmarks(void) {
    et_dataset_opts o = {.data_root = MEDIA, .require_answer = true, .landmark_dim = 136};
    et_dataset *ds = open_ok(DS_DIR "inline.json", &o);
    if (!ds) return;
    int64_t n;
    float *lm = read_npy(MEDIA "/landmarks/face1.npy", &n);
    et_sample s;
    et_status st = et_dataset_get(ds, 0, &s);
    CHECK(st == NULL, "%s", et_status_msg(st));
    CHECK(str_eq(s.id, "17") && s.n_landmark == 136 && !s.landmark_path &&
              memcmp(s.landmark, lm, 136 * 4) == 0,
          "flat inline landmarks");
    CHECK(s.has_attributes && str_eq(s.age, "34") && s.age_years == 34 &&
              str_eq(s.gender, "female") && str_eq(s.race, "asian"),
          "attributes");
    et_sample_free(&s);
    st = et_dataset_get(ds, 1, &s);
    CHECK(st == NULL, "%s", et_status_msg(st));
    CHECK(s.n_landmark == 136 && memcmp(s.landmark, lm, 136 * 4) == 0, "pair landmarks");
    CHECK(str_eq(s.age, "20-29") && isnan(s.age_years) && str_eq(s.gender, "male") && !s.race,
          "attributes 2");
    CHECK(ends_with(s.video, "/media/clip.mp4") && !s.image, "video %s", s.video);
    et_sample_free(&s);
    free(lm);
    et_dataset_close(ds);
}

static void test_modality_lengths(void) {
    // expected values from LLaVA's modality_lengths in Python on the same files
    et_dataset *ds = open_ok(DS_DIR "train.json", NULL);
    int64_t len[3];
    et_status s = et_dataset_modality_lengths(ds, len);
    CHECK(!s && len[0] == 27 && len[1] == 24 && len[2] == 9, "%lld %lld %lld", (long long)len[0],
          (long long)len[1], (long long)len[2]);
    et_dataset_close(ds);
    ds = open_ok(DS_DIR "inline.json", NULL);
    s = et_dataset_modality_lengths(ds, len);
    CHECK(!s && len[0] == 3 && len[1] == 3, "video counts as media: %lld %lld", (long long)len[0],
          (long long)len[1]);
    et_dataset_close(ds);
    // Python's whitespace: U+3000, NEL, U+001C, NBSP, U+2028 split; U+200B and U+00AD do not
    const char *t =
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\\u3000b \\u0085c\\u200bd\\u001ce"
        "\\u00a0f\\u2028g\\u00adh\"}]}\n"
        "{\"image\": null, \"conversations\": [{\"value\": \"  two  words \"}]}\n"
        "{\"id\": 1, oops}\n"
        "[1]\n";
    s = et_dataset_open_memory(t, strlen(t), "w.jsonl", NULL, &ds);
    CHECK(!s, "%s", et_status_msg(s));
    int64_t l4[4];
    s = et_dataset_modality_lengths(ds, l4);
    CHECK(!s && l4[0] == -6 && l4[1] == -2 && l4[2] == 0 && l4[3] == 0, "%lld %lld %lld %lld",
          (long long)l4[0], (long long)l4[1], (long long)l4[2], (long long)l4[3]);
    et_dataset_close(ds);
}

// ---- bad inputs ----------------------------------------------------------------------

// Opens text from memory (name decides the format) and gets sample idx; the error must
// have the code and contain substr.
static void expect_sample_err(const char *name, const char *text, int64_t idx, bool train,
                              et_code code, const char *substr) {
    et_dataset_opts o = {.data_root = MEDIA, .require_answer = train, .landmark_dim = 136};
    et_dataset *ds = NULL;
    et_status s = et_dataset_open_memory(text, strlen(text), name, &o, &ds);
    CHECK(s == NULL, "open %s: %s", name, et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    et_sample smp;
    s = et_dataset_get(ds, idx, &smp);
    CHECK(s != NULL, "accepted; expected '%s'", substr);
    if (!s) {
        et_sample_free(&smp);
    } else {
        CHECK(et_status_code(s) == code, "code %d, want %d: %s", et_status_code(s), code,
              et_status_msg(s));
        CHECK(strstr(et_status_msg(s), substr) != NULL, "message '%s' lacks '%s'", et_status_msg(s),
              substr);
        CHECK(smp.id == NULL && smp.turns == NULL && smp.landmark == NULL, "not zeroed");
        et_status_free(s);
    }
    // the dataset stays usable: the other samples still read
    for (int64_t i = 0; i < et_dataset_size(ds); i++) {
        if (i == idx) continue;
        s = et_dataset_get(ds, i, &smp);
        CHECK(s == NULL, "sample %lld after a bad one: %s", (long long)i, et_status_msg(s));
        et_status_free(s);
        et_sample_free(&smp);
    }
    et_dataset_close(ds);
}

static void expect_open_err(const char *name, const char *text, et_code code, const char *substr) {
    et_dataset_opts o = {.data_root = MEDIA};
    et_dataset *ds = NULL;
    et_status s = et_dataset_open_memory(text, strlen(text), name, &o, &ds);
    CHECK(s && et_status_code(s) == code && strstr(et_status_msg(s), substr), "%s: got '%s'",
          substr, et_status_msg(s));
    CHECK(ds == NULL, "dataset returned on error");
    et_status_free(s);
    et_dataset_close(ds);
}

#define GOOD_CONV                                                                                 \
    "\"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nQ\"}, {\"from\": \"gpt\", " \
    "\"value\": \"A\"}]"
#define GOOD "{\"id\": \"ok\", \"image\": \"images/face1.jpg\", " GOOD_CONV "}"

static void test_syntax_errors(void) {
    // an array: the error's line and column in the file
    const char *arr =
        "[\n"
        "  " GOOD
        ",\n"
        "  {\"id\": \"b\",\n"
        "   \"image\" \"images/face1.jpg\"},\n"
        "  " GOOD
        "\n"
        "]\n";
    expect_sample_err("bad.json", arr, 1, false, ET_ERR_FORMAT,
                      "bad.json:4:12: sample 1: JSON syntax error");
    // JSONL: the line number, the column within it
    const char *jl = GOOD "\n\n" GOOD "\n{\"id\": \"c\", \"label\": tru}\n" GOOD "\n";
    expect_sample_err("bad.jsonl", jl, 2, false, ET_ERR_FORMAT,
                      "bad.jsonl:4:22: sample 2: JSON syntax error");
    expect_sample_err("bad.jsonl", GOOD "\n{\"id\": 1} x\n", 1, false, ET_ERR_FORMAT,
                      "bad.jsonl:2:11: sample 1: JSON syntax error: unexpected text after");
    expect_sample_err("x.json", "[" GOOD ", 12]", 1, false, ET_ERR_FORMAT, "x.json:1:");
    expect_sample_err("x.json", "[" GOOD ", 12]", 1, false, ET_ERR_FORMAT,
                      "sample 1: a sample must be a JSON object, got a number");
    // a UTF-8 BOM is skipped and does not count as a column
    expect_sample_err("bom.json", "\xEF\xBB\xBF[" GOOD ", {\"id\" 1}]", 1, false, ET_ERR_FORMAT,
                      "bom.json:1:");
    expect_sample_err("bom.jsonl", "\xEF\xBB\xBF{\"id\" 1}\n" GOOD, 0, false, ET_ERR_FORMAT,
                      "bom.jsonl:1:7: sample 0: JSON syntax error");
    // structural errors fail the open with line:column
    expect_open_err("s.json", "[\n" GOOD ",\n]", ET_ERR_FORMAT,
                    "s.json:3:1: trailing comma after sample 0");
    expect_open_err("s.json", "[\n" GOOD "\n " GOOD "]", ET_ERR_FORMAT,
                    "s.json:3:2: expected ',' or ']' after sample 0");
    expect_open_err("s.json", "[{\"a\": [1, 2}]", ET_ERR_FORMAT,
                    "s.json:1:13: '}' does not match '[' in sample 0");
    expect_open_err("s.json", "[" GOOD ", {\"a\": \"x]", ET_ERR_FORMAT,
                    "end of file inside sample 1 (which starts at line 1): unterminated string");
    expect_open_err("s.json", "[" GOOD, ET_ERR_FORMAT, "the JSON array has no ']'");
    expect_open_err("s.json", "[" GOOD "]\n]", ET_ERR_FORMAT,
                    "s.json:2:1: unexpected text after the end of the JSON array");
    expect_open_err("s.json", "[\n , " GOOD "]", ET_ERR_FORMAT, "s.json:2:2: unexpected ','");
    expect_open_err("empty.json", "[ ]", ET_ERR_FORMAT, "empty.json: no samples");
    expect_open_err("empty.json", "", ET_ERR_FORMAT, "empty.json: no samples");
    expect_open_err("empty.jsonl", " \n\n  \n", ET_ERR_FORMAT, "empty.jsonl: no samples");
}

static void test_field_errors(void) {
    expect_sample_err(
        "f.jsonl", GOOD "\n{\"id\": \"a\", \"image\": 5}", 1, false, ET_ERR_FORMAT,
        "f.jsonl:2: sample 1 (id \"a\"): field 'image' must be a string, got a number");
    expect_sample_err("f.jsonl", "{\"id\": [1]}", 0, false, ET_ERR_FORMAT,
                      "sample 0: field 'id' must be a string or a number, got an array");
    expect_sample_err("f.jsonl", "{\"id\": 7, \"label\": {}}", 0, false, ET_ERR_FORMAT,
                      "sample 0 (id \"7\"): field 'label' must be a string or a number, got an "
                      "object");
    expect_sample_err("f.jsonl", "{\"gpt4\": false}", 0, false, ET_ERR_FORMAT,
                      "field 'gpt4' must be a string, got a boolean");
    expect_sample_err("f.jsonl", "{\"attributes\": []}", 0, false, ET_ERR_FORMAT,
                      "field 'attributes' must be an object, got an array");
    expect_sample_err("f.jsonl", "{\"attributes\": {\"age\": true}}", 0, false, ET_ERR_FORMAT,
                      "field 'attributes.age' must be a string or a number, got a boolean");
    expect_sample_err("f.jsonl", "{\"attributes\": {\"gender\": 1}}", 0, false, ET_ERR_FORMAT,
                      "field 'attributes.gender' must be a string, got a number");
    expect_sample_err("f.jsonl", "{\"conversations\": {}}", 0, false, ET_ERR_FORMAT,
                      "field 'conversations' must be an array, got an object");
    expect_sample_err("f.jsonl", "{\"conversations\": [\"hi\"]}", 0, false, ET_ERR_FORMAT,
                      "conversations[0] must be an object, got a string");
    expect_sample_err("f.jsonl", "{\"conversations\": [{\"from\": \"human\"}]}", 0, false,
                      ET_ERR_FORMAT, "conversations[0].value must be a string, got nothing");
    expect_sample_err("f.jsonl", "{\"conversations\": [{\"from\": 1, \"value\": \"x\"}]}", 0, false,
                      ET_ERR_FORMAT, "conversations[0].from must be a string, got a number");
    expect_sample_err("f.jsonl", "{\"landmark\": {\"x\": 1}}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark' must be a .npy path or a list of numbers, got an object");
    expect_sample_err("f.jsonl", "{\"landmark\": [1, \"2\"]}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark'[1] must be a number or a list of numbers, got a string");
    expect_sample_err("f.jsonl", "{\"landmark\": [[1, 2], [3, null]]}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark'[1] must hold numbers, got null");
    expect_sample_err("f.jsonl", "{\"landmark\": [1, 2, 3]}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark': the inline list has 3 floats, expected 136");
    expect_sample_err("f.jsonl", "{\"landmark\": [1, 1e39]}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark'[1] = 1e+39 is out of range");
    expect_sample_err("f.jsonl", "{\"landmark\": [[1, -1e300]]}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark'[0] holds -1e+300, out of range");
    expect_sample_err("f.jsonl", "{\"landmark\": []}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark' is an empty list");
}

static void test_conversation_errors(void) {
    const char *h = "{\"from\": \"human\", \"value\": \"<image>\\nQ\"}";
    const char *g = "{\"from\": \"gpt\", \"value\": \"A\"}";
    char buf[1024];
    snprintf(buf, sizeof(buf), "{\"id\": \"x\", \"conversations\": [%s, %s]}", h, h);
    expect_sample_err("c.jsonl", buf, 0, false, ET_ERR_FORMAT,
                      "sample 0 (id \"x\"): conversations[1] is from 'human' but a gpt turn was "
                      "expected (turns must alternate human, gpt, human, ...)");
    snprintf(buf, sizeof(buf), "{\"conversations\": [%s, %s]}", g, h);
    expect_sample_err("c.jsonl", buf, 0, false, ET_ERR_FORMAT,
                      "conversations[0] is from 'gpt' but a human turn was expected");
    snprintf(buf, sizeof(buf), "{\"conversations\": [%s, {\"from\": \"bot\", \"value\": \"A\"}]}",
             h);
    expect_sample_err("c.jsonl", buf, 0, false, ET_ERR_FORMAT,
                      "conversations[1].from is 'bot' (expected human, user, gpt, assistant or "
                      "system)");
    snprintf(buf, sizeof(buf),
             "{\"conversations\": [%s, %s, {\"from\": \"system\", \"value\": "
             "\"s\"}]}",
             h, g);
    expect_sample_err("c.jsonl", buf, 0, false, ET_ERR_FORMAT,
                      "conversations[2] is a system turn; only the first turn may be");
    // no answer when training: only a question, or a blank answer, or no turns
    snprintf(buf, sizeof(buf), "{\"id\": 5, \"conversations\": [%s]}", h);
    expect_sample_err("c.jsonl", buf, 0, true, ET_ERR_FORMAT,
                      "sample 0 (id \"5\"): no answer: conversations has no gpt turn with "
                      "non-empty text");
    snprintf(buf, sizeof(buf),
             "{\"conversations\": [%s, {\"from\": \"assistant\", \"value\": \" \\n \"}]}", h);
    expect_sample_err("c.jsonl", buf, 0, true, ET_ERR_FORMAT, "no answer");
    expect_sample_err("c.jsonl", "{\"conversations\": []}", 0, true, ET_ERR_FORMAT, "no answer");
    // the same turns are fine for an eval file; system + user/assistant roles accepted
    snprintf(buf, sizeof(buf),
             "{\"conversations\": [{\"from\": \"system\", \"value\": \"s\"}, {\"from\": "
             "\"user\", \"value\": \"q\"}, {\"from\": \"assistant\", \"value\": \"a\"}]}");
    et_dataset_opts o = {.data_root = MEDIA, .require_answer = true};
    et_dataset *ds = NULL;
    et_status s = et_dataset_open_memory(buf, strlen(buf), "ok.jsonl", &o, &ds);
    CHECK(s == NULL, "%s", et_status_msg(s));
    et_sample smp;
    s = et_dataset_get(ds, 0, &smp);
    CHECK(s == NULL && smp.n_turns == 3 && smp.turns[0].role == ET_ROLE_SYSTEM &&
              smp.turns[2].role == ET_ROLE_ASSISTANT && str_eq(et_sample_answer(&smp), "a"),
          "%s", et_status_msg(s));
    et_status_free(s);
    et_sample_free(&smp);
    et_dataset_close(ds);
}

static void test_path_errors(void) {
    expect_sample_err("p.jsonl", "{\"image\": \"../train.json\"}", 0, false, ET_ERR_INVALID,
                      "field 'image': '../train.json' escapes the data root");
    expect_sample_err("p.jsonl", "{\"image\": \"images/../../train.json\"}", 0, false,
                      ET_ERR_INVALID, "escapes the data root");
    expect_sample_err("p.jsonl", "{\"video\": \"/etc/passwd\"}", 0, false, ET_ERR_INVALID,
                      "field 'video': '/etc/passwd' escapes the data root");
    expect_sample_err("p.jsonl", "{\"landmark\": \"../../dataset/npy/f4_68x2.npy\"}", 0, false,
                      ET_ERR_INVALID, "field 'landmark': '../../dataset/npy/f4_68x2.npy' escapes");
    expect_sample_err("p.jsonl", "{\"image\": \"images/nope.jpg\"}", 0, false, ET_ERR_MISSING,
                      "field 'image': 'images/nope.jpg': no such file under the data root");
    expect_sample_err("p.jsonl", "{\"image\": \"\"}", 0, false, ET_ERR_FORMAT,
                      "field 'image': empty path");
    expect_sample_err("p.jsonl", "{\"image\": \"images\"}", 0, false, ET_ERR_IO,
                      "'images' is not a regular file");
    expect_sample_err("p.jsonl", "{\"landmark\": \"landmarks/wrong.npy\"}", 0, false, ET_ERR_FORMAT,
                      "field 'landmark': 'landmarks/wrong.npy' of shape (10, 2) has 20 floats, "
                      "expected 136");
    expect_sample_err("p.jsonl", "{\"landmark\": \"images/face1.jpg\"}", 0, false, ET_ERR_FORMAT,
                      "face1.jpg: not a .npy file (bad magic");
    // an absolute path inside the root is fine
    char buf[PATH_MAX + 64];
    char *real = realpath(MEDIA "/images/face2.jpg", NULL);
    snprintf(buf, sizeof(buf), "{\"image\": \"%s\", \"landmark\": \"./landmarks//face1.npy\"}",
             real);
    et_dataset_opts o = {.data_root = MEDIA, .landmark_dim = 136};
    et_dataset *ds = NULL;
    et_status s = et_dataset_open_memory(buf, strlen(buf), "abs.jsonl", &o, &ds);
    CHECK(!s, "%s", et_status_msg(s));
    et_sample smp;
    s = et_dataset_get(ds, 0, &smp);
    CHECK(s == NULL && str_eq(smp.image, real) && smp.n_landmark == 136, "%s", et_status_msg(s));
    et_status_free(s);
    et_sample_free(&smp);
    et_dataset_close(ds);
    free(real);

    // symlinks: one leading out of the root is refused, one staying inside is followed
    char root[300], link[400], inner[400], dsfile[400];
    snprintf(root, sizeof(root), "%s/root", g_tmp);
    mkdir(root, 0755);
    snprintf(link, sizeof(link), "%s/out.jpg", root);
    CHECK(symlink(MEDIA "/images/face1.jpg", link) == 0, "symlink");
    snprintf(inner, sizeof(inner), "%s/real.jpg", root);
    write_text(inner, "x");
    snprintf(link, sizeof(link), "%s/in.jpg", root);
    CHECK(symlink("real.jpg", link) == 0, "symlink");
    snprintf(dsfile, sizeof(dsfile), "%s/links.jsonl", root);
    write_text(dsfile, "{\"image\": \"in.jpg\"}\n{\"image\": \"out.jpg\"}\n");
    ds = open_ok(dsfile, NULL);  // root defaults to the file's directory
    if (ds) {
        s = et_dataset_get(ds, 0, &smp);
        CHECK(s == NULL && ends_with(smp.image, "/root/real.jpg"), "%s", et_status_msg(s));
        et_status_free(s);
        et_sample_free(&smp);
        s = et_dataset_get(ds, 1, &smp);
        CHECK(s && et_status_code(s) == ET_ERR_INVALID &&
                  strstr(et_status_msg(s), "'out.jpg' escapes the data root") &&
                  strstr(et_status_msg(s), "it resolves to"),
              "%s", et_status_msg(s));
        et_status_free(s);
        et_dataset_close(ds);
    }
    // skip_media_check keeps the image path as written
    et_dataset_opts sk = {.skip_media_check = true};
    ds = open_ok(dsfile, &sk);
    if (ds) {
        s = et_dataset_get(ds, 1, &smp);
        CHECK(s == NULL && str_eq(smp.image, "out.jpg"), "%s", et_status_msg(s));
        et_status_free(s);
        et_sample_free(&smp);
        et_dataset_close(ds);
    }
    // bad roots and files
    et_dataset_opts bad = {.data_root = DS_DIR "train.json"};
    s = et_dataset_open(DS_DIR "train.json", &bad, &ds);
    CHECK(s && strstr(et_status_msg(s), "is not a directory"), "%s", et_status_msg(s));
    et_status_free(s);
    s = et_dataset_open(DS_DIR "nope.json", NULL, &ds);
    CHECK(s && et_status_code(s) == ET_ERR_MISSING && strstr(et_status_msg(s), "nope.json: "), "%s",
          et_status_msg(s));
    et_status_free(s);
}

// ---- a large file -----------------------------------------------------------------

#define BIG_N 20000
static char g_big[300];

static void big_expected(int64_t i, char *id, char *answer) {
    sprintf(id, "big_%06lld", (long long)i);
    // ~1.1 KB answers make the file ~22 MB
    int k = sprintf(answer, "answer %lld:", (long long)i);
    for (int r = 0; r < 200; r++)
        k += sprintf(answer + k, " w%lld", (long long)((i * 31 + r) % 997));
}

static long rss_peak_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_large_array(void) {
    snprintf(g_big, sizeof(g_big), "%s/big.json", g_tmp);
    FILE *f = fopen(g_big, "wb");
    ET_ASSERT(f, "create");
    char id[32], ans[4096];
    fputs("[\n", f);
    for (int64_t i = 0; i < BIG_N; i++) {
        big_expected(i, id, ans);
        fprintf(f,
                "  {\"id\": \"%s\", \"conversations\": [{\"from\": \"human\", \"value\": "
                "\"q [{\\\"\\n\"},\n    {\"from\": \"gpt\", \"value\": \"%s\"}]}%s\n",
                id, ans, i + 1 < BIG_N ? "," : "");
    }
    fputs("]\n", f);
    long file_bytes = ftell(f);
    fclose(f);
    long before = rss_peak_kb();
    et_dataset_opts o = {.require_answer = true};
    et_dataset *ds = open_ok(g_big, &o);
    long grew_kb = rss_peak_kb() - before;
    if (!ds) return;
    printf("  big.json: %ld bytes, %d samples; peak RSS grew %ld KiB while indexing\n", file_bytes,
           BIG_N, grew_kb);
    CHECK(et_dataset_size(ds) == BIG_N, "size %lld", (long long)et_dataset_size(ds));
    // the index is offsets only (32 bytes a sample, ~640 KiB): far below the file's size
    CHECK(grew_kb * 1024 < file_bytes / 4, "indexing grew RSS by %ld KiB for a %ld-byte file",
          grew_kb, file_bytes);
    for (int k = 0; k < 300; k++) {
        int64_t i = (int64_t)(test_uniform() * BIG_N);
        if (k == 0) i = 0;
        if (k == 1) i = BIG_N - 1;
        et_sample s;
        et_status st = et_dataset_get(ds, i, &s);
        big_expected(i, id, ans);
        CHECK(st == NULL && str_eq(s.id, id) && str_eq(et_sample_answer(&s), ans) &&
                  str_eq(s.turns[0].value, "q [{\"\n"),
              "sample %lld: %s", (long long)i, et_status_msg(st));
        et_status_free(st);
        et_sample_free(&s);
    }
    et_dataset_close(ds);
}

typedef struct {
    et_dataset *ds;
    int t, bad;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    char id[32], ans[4096];
    for (int64_t i = w->t; i < BIG_N; i += 37) {
        et_sample s;
        et_status st = et_dataset_get(w->ds, i, &s);
        big_expected(i, id, ans);
        if (st || !str_eq(s.id, id) || !str_eq(et_sample_answer(&s), ans)) w->bad++;
        et_status_free(st);
        et_sample_free(&s);
    }
    return NULL;
}

static void test_concurrent_get(void) {
    et_dataset_opts o = {.require_answer = true};
    et_dataset *ds = open_ok(g_big, &o);
    if (!ds) return;
    pthread_t th[4];
    worker w[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (worker){ds, t, 0};
        pthread_create(&th[t], NULL, work, &w[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK(w[t].bad == 0, "thread %d: %d bad samples", t, w[t].bad);
    }
    et_dataset_close(ds);
}

// ---- mixtures -----------------------------------------------------------------------

static et_dataset *mem_dataset(int n, const char *name) {
    char *text = malloc((size_t)n * 32 + 1);
    size_t k = 0;
    for (int i = 0; i < n; i++) k += (size_t)sprintf(text + k, "{\"id\": %d}\n", i);
    et_dataset *ds = NULL;
    et_status s = et_dataset_open_memory(text, k, name, NULL, &ds);
    ET_ASSERT(!s, "%s", et_status_msg(s));
    free(text);
    return ds;
}

static void mixture_counts(et_mixture *m, int nds, int64_t counts[][64]) {
    for (int d = 0; d < nds; d++) memset(counts[d], 0, sizeof(counts[d]));
    for (int64_t i = 0; i < et_mixture_size(m); i++) {
        int d;
        int64_t idx;
        et_mixture_locate(m, i, &d, &idx);
        counts[d][idx]++;
    }
}

static void test_mixture(void) {
    et_dataset *ds[3] = {mem_dataset(10, "a.jsonl"), mem_dataset(4, "b.jsonl"),
                         mem_dataset(40, "c.jsonl")};
    double w[3] = {1.0, 2.0, 0.5};
    et_mixture *m = NULL;
    et_status s = et_mixture_create(ds, w, 3, &m);
    CHECK(s == NULL, "%s", et_status_msg(s));
    if (!m) return;
    CHECK(et_mixture_size(m) == 10 + 8 + 20, "size %lld", (long long)et_mixture_size(m));
    int64_t counts[3][64];
    s = et_mixture_epoch(m, 1234, 3);
    CHECK(!s, "%s", et_status_msg(s));
    mixture_counts(m, 3, counts);
    int half = 0;
    for (int i = 0; i < 10; i++)
        CHECK(counts[0][i] == 1, "a[%d] drawn %lld", i, (long long)counts[0][i]);
    for (int i = 0; i < 4; i++)
        CHECK(counts[1][i] == 2, "b[%d] drawn %lld", i, (long long)counts[1][i]);
    for (int i = 0; i < 40; i++) {
        CHECK(counts[2][i] <= 1, "c[%d] drawn twice", i);
        half += (int)counts[2][i];
    }
    CHECK(half == 20, "c drew %d", half);
    // deterministic in (seed, epoch); another epoch or seed gives another order
    int order[3][38];
    int64_t idxs[38];
    uint64_t seeds[3] = {1234, 1234, 99};
    int64_t epochs[3] = {3, 4, 3};
    for (int r = 0; r < 3; r++) {
        et_mixture_epoch(m, seeds[r], epochs[r]);
        for (int i = 0; i < 38; i++) {
            int64_t idx;
            et_mixture_locate(m, i, &order[r][i], &idx);
            order[r][i] = order[r][i] * 100 + (int)idx;
            if (r == 0) idxs[i] = order[r][i];
        }
    }
    et_mixture_epoch(m, 1234, 3);
    bool same = true;
    for (int i = 0; i < 38; i++) {
        int d;
        int64_t idx;
        et_mixture_locate(m, i, &d, &idx);
        if (d * 100 + idx != idxs[i]) same = false;
    }
    CHECK(same, "epoch (1234, 3) rebuilt differently");
    CHECK(memcmp(order[0], order[1], sizeof(order[0])) != 0, "epochs 3 and 4 gave one order");
    CHECK(memcmp(order[0], order[2], sizeof(order[0])) != 0, "seeds 1234 and 99 gave one order");
    // interleaved: dataset a's 10 samples are not all at the front
    int front_a = 0;
    for (int i = 0; i < 10; i++) front_a += order[0][i] < 100;
    CHECK(front_a < 10, "not interleaved");
    // a seeded half differs between epochs
    et_mixture_epoch(m, 1234, 4);
    int64_t counts2[3][64];
    mixture_counts(m, 3, counts2);
    CHECK(memcmp(counts[2], counts2[2], sizeof(counts[2])) != 0, "the same half twice");
    et_mixture_free(m);

    // 1.5: every sample once plus a seeded half, each at most twice
    double w15[1] = {1.5};
    s = et_mixture_create(ds + 2, w15, 1, &m);
    CHECK(!s && et_mixture_size(m) == 60, "%s", et_status_msg(s));
    mixture_counts(m, 1, counts);
    int twice = 0;
    for (int i = 0; i < 40; i++) {
        CHECK(counts[0][i] == 1 || counts[0][i] == 2, "c[%d] %lld", i, (long long)counts[0][i]);
        twice += counts[0][i] == 2;
    }
    CHECK(twice == 20, "%d drawn twice", twice);
    et_mixture_free(m);

    double wz[2] = {0, 0}, wneg[2] = {1, -1}, wnan[2] = {1, NAN};
    s = et_mixture_create(ds, wz, 2, &m);
    CHECK(s && strstr(et_status_msg(s), "the weights draw no samples"), "%s", et_status_msg(s));
    et_status_free(s);
    s = et_mixture_create(ds, wneg, 2, &m);
    CHECK(s && strstr(et_status_msg(s), "weight -1 of b.jsonl must be finite and >= 0"), "%s",
          et_status_msg(s));
    et_status_free(s);
    s = et_mixture_create(ds, wnan, 2, &m);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "%s", et_status_msg(s));
    et_status_free(s);
    for (int i = 0; i < 3; i++) et_dataset_close(ds[i]);
}

// Input that cJSON would read differently from Python, or that would train on broken text:
// refused with the sample named (issue 12).
static void test_silent_acceptance(void) {
    // "\u0000" in a turn: cJSON would end the C string there ("Q"); refused with its position
    expect_sample_err("nul.jsonl",
                      "{\"id\": \"n\", \"conversations\": [{\"from\": \"human\", \"value\": "
                      "\"Q\\u0000evil\"}, {\"from\": \"gpt\", \"value\": \"A\"}]}",
                      0, true, ET_ERR_FORMAT,
                      "nul.jsonl:1: sample 0 (id \"n\"): a string holds the escape \\u0000 (a NUL "
                      "character) at line 1, column 60, which would cut its text short");
    // an escaped backslash before "u0000" is ordinary text
    {
        const char *t =
            "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\\\\u0000b\"}, "
            "{\"from\": \"gpt\", \"value\": \"A\"}]}";
        et_dataset *ds = NULL;
        et_status s = et_dataset_open_memory(t, strlen(t), "bs.jsonl", NULL, &ds);
        et_sample smp;
        if (!s) s = et_dataset_get(ds, 0, &smp);
        CHECK(!s && str_eq(smp.turns[0].value, "a\\u0000b"), "%s", et_status_msg(s));
        if (!s) et_sample_free(&smp);
        et_status_free(s);
        et_dataset_close(ds);
    }
    // invalid UTF-8 in turn text: a stray byte, an overlong '/', a UTF-16 surrogate
    expect_sample_err("u.jsonl",
                      GOOD
                      "\n{\"id\": \"u\", \"conversations\": [{\"from\": \"human\", \"value\": "
                      "\"Q\"}, {\"from\": \"gpt\", \"value\": \"ab\xff\"}]}",
                      1, true, ET_ERR_FORMAT,
                      "u.jsonl:2: sample 1 (id \"u\"): conversations[1].value is not valid UTF-8 "
                      "(byte 0xff at byte 2 of the text)");
    expect_sample_err("u.jsonl",
                      "{\"conversations\": [{\"from\": \"human\", \"value\": \"\xc0\xaf\"}, "
                      "{\"from\": \"gpt\", \"value\": \"A\"}]}",
                      0, true, ET_ERR_FORMAT,
                      "conversations[0].value is not valid UTF-8 (byte 0xc0 at byte 0");
    expect_sample_err("u.jsonl",
                      "{\"conversations\": [{\"from\": \"human\", \"value\": \"x\xed\xa0\x80\"}, "
                      "{\"from\": \"gpt\", \"value\": \"A\"}]}",
                      0, true, ET_ERR_FORMAT, "value is not valid UTF-8 (byte 0xed at byte 1");
    // duplicate keys: Python keeps the last, cJSON the first; refused with the key's path
    expect_sample_err("d.json",
                      "[" GOOD
                      ",\n {\"id\": \"d\", \"image\": \"images/face1.jpg\", \"image\": "
                      "\"images/face2.jpg\", " GOOD_CONV "}]",
                      1, true, ET_ERR_FORMAT,
                      "d.json:2: sample 1 (id \"d\"): duplicate key \"image\" at image (Python's "
                      "json would take the last one");
    expect_sample_err("d.jsonl",
                      GOOD "\n" GOOD
                           "\n{\"conversations\": [{\"from\": \"human\", \"value\": "
                           "\"Q\"}, {\"from\": \"gpt\", \"value\": \"A\", \"value\": \"B\"}]}",
                      2, true, ET_ERR_FORMAT,
                      "d.jsonl:3: sample 2: duplicate key \"value\" at conversations[1].value");
    expect_sample_err("d.jsonl", "{\"attributes\": {\"x\": [{\"a\": 1, \"b\": 2, \"a\": 3}]}}", 0,
                      false, ET_ERR_FORMAT, "duplicate key \"a\" at attributes.x[0].a");
    // nesting past cJSON's limit: said so, not "syntax error"
    {
        char *t = malloc(4096);
        size_t k = (size_t)sprintf(t, "{\"id\": \"deep\", \"x\": ");
        for (int i = 0; i < 1001; i++) t[k++] = '[';
        for (int i = 0; i < 1001; i++) t[k++] = ']';
        strcpy(t + k, "}");
        expect_sample_err("deep.jsonl", t, 0, false, ET_ERR_FORMAT,
                          "deep.jsonl:1:1020: sample 0: JSON nesting deeper than 1000 levels");
        // 1000 levels parse
        k = (size_t)sprintf(t, "{\"x\": ");
        for (int i = 0; i < 999; i++) t[k++] = '[';
        for (int i = 0; i < 999; i++) t[k++] = ']';
        strcpy(t + k, "}");
        et_dataset *ds = NULL;
        et_status s = et_dataset_open_memory(t, strlen(t), "ok.jsonl", NULL, &ds);
        et_sample smp;
        if (!s) s = et_dataset_get(ds, 0, &smp);
        CHECK(!s, "1000 levels: %s", et_status_msg(s));
        if (!s) et_sample_free(&smp);
        et_status_free(s);
        et_dataset_close(ds);
        free(t);
    }
    // NaN / Inf landmarks in a .npy: refused at load, naming the file and the index
    char root[300], lm[400];
    snprintf(root, sizeof root, "%s/nanroot", g_tmp);
    mkdir(root, 0755);
    float v[136] = {0};
    for (int bad = 0; bad < 2; bad++) {
        v[7] = bad ? INFINITY : NAN;
        snprintf(lm, sizeof lm, "%s/lm%d.npy", root, bad);
        et_status s = et_npy_write_f32(lm, v, 2, (int64_t[]){68, 2});
        CHECK(!s, "%s", et_status_msg(s));
        et_status_free(s);
        char text[200];
        snprintf(text, sizeof text, "{\"id\": \"z\", \"landmark\": \"lm%d.npy\"}", bad);
        et_dataset_opts o = {.data_root = root, .landmark_dim = 136};
        et_dataset *ds = NULL;
        s = et_dataset_open_memory(text, strlen(text), "nan.jsonl", &o, &ds);
        et_sample smp;
        if (!s) s = et_dataset_get(ds, 0, &smp);
        char want[PATH_MAX + 200];
        char *real = realpath(lm, NULL);
        snprintf(want, sizeof want,
                 "nan.jsonl:1: sample 0 (id \"z\"): field 'landmark': %s holds %s at index 7 "
                 "(landmarks must be finite numbers)",
                 real ? real : lm, bad ? "Inf" : "NaN");
        free(real);
        CHECK(s && strstr(et_status_msg(s), want), "got '%s', want '%s'", et_status_msg(s), want);
        et_status_free(s);
        et_dataset_close(ds);
    }
}

int main(void) {
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/et_test_dataset_XXXXXX");
    ET_ASSERT(mkdtemp(g_tmp), "mkdtemp");
    RUN(test_large_array);  // first, so the RSS peak before it is low
    RUN(test_concurrent_get);
    RUN(test_train_array);
    RUN(test_array_vs_jsonl);
    RUN(test_eval_layout);
    RUN(test_inline_landmarks);
    RUN(test_modality_lengths);
    RUN(test_syntax_errors);
    RUN(test_field_errors);
    RUN(test_conversation_errors);
    RUN(test_path_errors);
    RUN(test_silent_acceptance);
    RUN(test_mixture);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_summary();
}
