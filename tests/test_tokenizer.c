// tests/test_tokenizer.c - unit tests for data/tokenizer.c. Expected ids were produced by HF
// tokenizers 0.20.3 on the same tokenizer.json files (tests/golden/tokenizer/).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../data/tokenizer.h"
#include "test_util.h"

#define DIR EMOTUNE_SOURCE_DIR "/tests/golden/tokenizer/"

static et_tokenizer *load(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), DIR "%s.json", name);
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_load(path, &tk);
    CHECK(s == NULL, "%s", et_status_msg(s));
    et_status_free(s);
    return tk;
}

static int ids_eq(const et_ids *v, const int32_t *want, size_t n) {
    return v->len == n && memcmp(v->data, want, n * sizeof(int32_t)) == 0;
}

#define CHECK_ENC(tk, text, flags, ...)                                      \
    do {                                                                     \
        const int32_t want_[] = {__VA_ARGS__};                               \
        et_ids got_ = {0};                                                   \
        et_tokenizer_encode((tk), (text), sizeof(text) - 1, (flags), &got_); \
        CHECK(ids_eq(&got_, want_, sizeof(want_) / sizeof(want_[0])),        \
              "encode \"%s\": got %zu ids "                                  \
              "(first %d)",                                                  \
              (text), got_.len, got_.len ? got_.data[0] : -1);               \
        et_ids_free(&got_);                                                  \
    } while (0)

static void test_byte_fallback(void) {
    et_tokenizer *tk = load("llama2_legacy");
    if (!tk) return;
    // U+10348 is not in the vocab: "▁" then its four UTF-8 bytes as <0xHH> tokens
    CHECK_ENC(tk, "\xF0\x90\x8D\x88", 0, 362, 243, 147, 144, 139);
    CHECK(et_tokenizer_token_to_id(tk, "<0xF0>", 6) == 243);
    // invalid UTF-8 input is encoded as U+FFFD
    CHECK_ENC(tk,
              "a\xFF"
              "b",
              0, 381, 242, 194, 192, 317);
    CHECK_ENC(tk,
              "a\xEF\xBF\xBD"
              "b",
              0, 381, 242, 194, 192, 317);
    CHECK_ENC(tk, "<s>hi", 0, 1, 461);
    CHECK_ENC(tk, "<s>hi", ET_TOK_TEMPLATE, 1, 1, 461);
    CHECK_ENC(tk, "<s>hi", ET_TOK_ADD_BOS | ET_TOK_ADD_EOS, 1, 1, 461, 2);
    CHECK(et_tokenizer_bos_id(tk) == 1 && et_tokenizer_eos_id(tk) == 2);
    CHECK(et_tokenizer_unk_id(tk) == 0);
    CHECK(et_tokenizer_vocab_size(tk) == 1960, "%d", et_tokenizer_vocab_size(tk));
    size_t n;
    const char *t = et_tokenizer_id_to_token(tk, 1957, &n);
    CHECK(t && n == 7 && !memcmp(t, "<video>", 7));
    CHECK(et_tokenizer_id_to_token(tk, 99999, NULL) == NULL);
    CHECK(et_tokenizer_token_to_id(tk, "nope-not-a-token", 16) == -1);
    CHECK(et_tokenizer_is_special(tk, 1957) && !et_tokenizer_is_special(tk, 1958));
    et_tokenizer_free(tk);
}

static void test_added_flags(void) {
    et_tokenizer *tk = load("llama2_legacy");
    if (!tk) return;
    // <video>: lstrip + rstrip swallow the spaces around it
    CHECK_ENC(tk, " <video>  x", 0, 1957, 491);
    CHECK_ENC(tk, "a <video> b", 0, 381, 1957, 392);
    // hello_world: single_word, so not inside "xhello_world"
    CHECK_ENC(tk, "xhello_world hello_world", 0, 491, 382, 424, 330, 315, 338, 400, 436, 362, 1959);
    // [FACE]: normalized (pattern "▁[FACE]") with rstrip
    CHECK_ENC(tk, "[FACE]  x", 0, 1958, 362, 491);
    et_tokenizer_free(tk);
    tk = load("llama3");
    if (!tk) return;
    CHECK_ENC(tk, "a <|left|> b", 0, 64, 2007, 270);
    CHECK_ENC(tk, "Hello world!", ET_TOK_TEMPLATE, 2000, 39, 578, 78, 363, 311, 0);
    CHECK(et_tokenizer_bos_id(tk) == 2000);
    et_tokenizer_free(tk);
}

static const char *TINY =
    "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", "
    "\"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
    "\"special\": true}], \"normalizer\": null, \"pre_tokenizer\": null, \"post_processor\": "
    "null, \"decoder\": null, \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": "
    "\"<unk>\", \"fuse_unk\": %s, \"byte_fallback\": false, \"ignore_merges\": false, "
    "\"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, \"c\": 4, \"abc\": 5}, "
    "\"merges\": [\"a b\", [\"ab\", \"c\"]]}}";

static et_tokenizer *tiny(const char *fuse) {
    char json[2048];
    snprintf(json, sizeof(json), TINY, fuse);
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_from_json(json, strlen(json), "tiny.json", &tk);
    CHECK(s == NULL, "%s", et_status_msg(s));
    et_status_free(s);
    return tk;
}

static void test_fused_unk(void) {
    et_tokenizer *tk = tiny("true");
    if (!tk) return;
    CHECK_ENC(tk, "axyb", 0, 1, 0, 2);
    CHECK_ENC(tk, "ab", 0, 3);
    CHECK_ENC(tk, "abc", 0, 5);
    CHECK_ENC(tk, "xxabcx", 0, 0, 5, 0);
    CHECK_ENC(tk,
              "a\xC3\xA9"
              "bc",
              0, 1, 0, 2, 4);
    // no decoder: tokens joined by spaces, <unk> special and skipped
    int32_t ids[] = {1, 0, 2};
    char *d = et_tokenizer_decode(tk, ids, 3, true, NULL);
    CHECK(!strcmp(d, "a b"), "%s", d);
    free(d);
    et_tokenizer_free(tk);
    tk = tiny("false");
    if (!tk) return;
    CHECK_ENC(tk, "axyb", 0, 1, 0, 0, 2);
    et_tokenizer_free(tk);
}

static void test_decode_invalid_utf8(void) {
    et_tokenizer *tk = load("llama2_legacy");
    if (!tk) return;
    // a run of byte tokens that is not valid UTF-8: one U+FFFD per byte
    int32_t a[] = {et_tokenizer_token_to_id(tk, "<0xE4>", 6),
                   et_tokenizer_token_to_id(tk, "<0xB8>", 6),
                   et_tokenizer_token_to_id(tk,
                                            "\xE2\x96\x81"
                                            "a",
                                            4)};
    char *d = et_tokenizer_decode(tk, a, 3, false, NULL);
    CHECK(!strcmp(d, "\xEF\xBF\xBD\xEF\xBF\xBD a"), "%s", d);
    free(d);
    int32_t b[] = {a[0], a[1], et_tokenizer_token_to_id(tk, "<0xAD>", 6)};
    d = et_tokenizer_decode(tk, b, 3, false, NULL);
    CHECK(!strcmp(d, "\xE4\xB8\xAD"), "%s", d);
    free(d);
    et_tokenizer_free(tk);
    tk = load("llama3");
    if (!tk) return;
    // byte-level: lossy UTF-8, one U+FFFD for the maximal invalid subsequence E4 B8
    int32_t c[] = {160, 116, 64};
    d = et_tokenizer_decode(tk, c, 3, false, NULL);
    CHECK(!strcmp(d,
                  "\xEF\xBF\xBD"
                  "a"),
          "%s", d);
    free(d);
    et_tokenizer_free(tk);
}

static void check_pieces(const char *s, const char *const *want, int nwant) {
    size_t n = strlen(s), i = 0;
    int k = 0;
    while (i < n) {
        size_t e = et_tokenizer_llama3_match(s, n, i);
        CHECK(e > i && e <= n);
        if (e <= i) return;
        CHECK(k < nwant && strlen(want[k]) == e - i && !memcmp(want[k], s + i, e - i),
              "piece %d of \"%s\": \"%.*s\"", k, s, (int)(e - i), s + i);
        k++;
        i = e;
    }
    CHECK(k == nwant, "%d pieces of \"%s\", want %d", k, s, nwant);
}

static void test_regex_pieces(void) {
    // from HF pre_tokenize_str with the LLaMA-3 Split pre-tokenizer
    const char *a[] = {"I", "'\xC5\xBF", " x", "'S", " y", "'K", " '", "LL", " '", "Ll"};
    check_pieces("I'\xC5\xBF x'S y'K 'LL 'Ll", a, 10);
    const char *b[] = {"a", "  \n\n", " b", "\t\t\n", "c", "   "};
    check_pieces("a  \n\n b\t\t\nc   ", b, 6);
    const char *c[] = {"x", "\xC2\xA0", "\xC2\xA0y", " ", "\xE2\x80\xA8z"};
    check_pieces("x\xC2\xA0\xC2\xA0y \xE2\x80\xA8z", c, 5);
    const char *d[] = {"123", "45", " abc", "!!\n\n\n", "q"};
    check_pieces("12345 abc!!\n\n\nq", d, 5);
}

static void check_err(const char *json, et_code code, const char *needle) {
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_from_json(json, strlen(json), "bad.json", &tk);
    CHECK(s != NULL && tk == NULL, "expected an error for %s", json);
    if (!s) {
        et_tokenizer_free(tk);
        return;
    }
    CHECK(et_status_code(s) == code, "code %d for %s", et_status_code(s), et_status_msg(s));
    CHECK(strstr(et_status_msg(s), "bad.json") && strstr(et_status_msg(s), needle),
          "message \"%s\" lacks \"%s\"", et_status_msg(s), needle);
    et_status_free(s);
}

#define M(extra) \
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, " extra "}}"

static void test_errors(void) {
    check_err("{\"normalizer\": null}", ET_ERR_MISSING, "model is missing");
    check_err("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", ET_ERR_UNSUPPORTED,
              "model.type \"WordPiece\"");
    check_err("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", ET_ERR_MISSING, "model.vocab");
    check_err(M("\"merges\": [\"a c\"]"), ET_ERR_FORMAT, "model.merges[0]: token \"c\"");
    check_err(M("\"merges\": [\"a b\", \"b a\"]"), ET_ERR_FORMAT, "merged token \"ba\"");
    check_err(M("\"merges\": [\"ab\"]"), ET_ERR_FORMAT, "model.merges[0]");
    check_err(M("\"merges\": [7]"), ET_ERR_FORMAT, "model.merges[0]");
    check_err(M("\"merges\": [\"a b\"], \"unk_token\": \"<unk>\""), ET_ERR_FORMAT,
              "model.unk_token");
    check_err("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}",
              ET_ERR_FORMAT, "model.vocab[\"a\"]");
    check_err("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
              ET_ERR_FORMAT, "used twice");
    check_err("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", ET_ERR_MISSING,
              "model.merges is missing");
    check_err(
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []},\n"
        "\"normalizer\": {\"type\": \"NFKC\"}}",
        ET_ERR_UNSUPPORTED, "normalizer.type");
    check_err(
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []},\n"
        "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"}, "
        "\"behavior\": \"Isolated\"}}",
        ET_ERR_UNSUPPORTED, "pre_tokenizer.pattern");
    check_err(
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []},\n"
        "\"added_tokens\": [{\"id\": 3}]}",
        ET_ERR_MISSING, "added_tokens[0].content");
    check_err(
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []},\n"
        "\"decoder\": {\"type\": \"CTC\"}}",
        ET_ERR_UNSUPPORTED, "decoder.type \"CTC\"");
    check_err("{\n\"model\": {\n\"type\": \"BPE\",\n\"vocab\": {\"a\": 0,,}}}", ET_ERR_FORMAT,
              "invalid JSON near line 4");
    check_err("[1, 2]", ET_ERR_FORMAT, "top level");
    check_err("", ET_ERR_FORMAT, "invalid JSON");
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_load("/nonexistent/tokenizer.json", &tk);
    CHECK(s && et_status_code(s) == ET_ERR_MISSING && strstr(et_status_msg(s), "/nonexistent"));
    et_status_free(s);
}

// A tokenizer.json followed by anything but whitespace is refused (HF's tokenizers, through
// serde_json, refuses "trailing characters"); trailing whitespace is fine.
static void test_trailing_data(void) {
#define OK_JSON "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"
    check_err(OK_JSON "garbage", ET_ERR_FORMAT, "trailing data after the JSON object at line 1");
    check_err(OK_JSON "\n{\"model\": null}", ET_ERR_FORMAT, "at line 2");
    check_err(OK_JSON " ]", ET_ERR_FORMAT, "must hold one JSON object only");
    // a NUL byte inside the file (the length is the file's, not strlen's)
    const char nul[] = OK_JSON "\0x";
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_from_json(nul, sizeof nul - 1, "nul.json", &tk);
    CHECK(s && strstr(et_status_msg(s), "nul.json: trailing data"), "%s",
          s ? et_status_msg(s) : "accepted");
    et_status_free(s);
    // the real file with garbage appended, read from disk
    char path[64];
    snprintf(path, sizeof path, "/tmp/et_tok_trailing_%d.json", (int)getpid());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(OK_JSON "\n\t \r\n", f);  // trailing whitespace: accepted
        fclose(f);
        s = et_tokenizer_load(path, &tk);
        CHECK(!s && tk, "trailing whitespace refused: %s", s ? et_status_msg(s) : "");
        et_status_free(s), et_tokenizer_free(tk), tk = NULL;
        f = fopen(path, "ab");
        fputs("}", f);
        fclose(f);
        s = et_tokenizer_load(path, &tk);
        CHECK(s && strstr(et_status_msg(s), path) && strstr(et_status_msg(s), "trailing data"),
              "%s", s ? et_status_msg(s) : "accepted");
        et_status_free(s);
        unlink(path);
    }
#undef OK_JSON
}

int main(void) {
    RUN(test_trailing_data);
    RUN(test_byte_fallback);
    RUN(test_added_flags);
    RUN(test_fused_unk);
    RUN(test_decode_invalid_utf8);
    RUN(test_regex_pieces);
    RUN(test_errors);
    return test_summary();
}
