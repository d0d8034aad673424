// tests/test_template.c - unit tests of data/template.c: template lookup and errors, turn
// parsing from JSON, the media-moving option, placeholders, evaluation prompts and stops,
// truncation and the "no supervised token left" flag, LLaVA's mismatch report.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/template.h"
#include "../data/tokenizer.h"
#include "test_util.h"

#define TOKDIR EMOTUNE_SOURCE_DIR "/tests/golden/tokenizer/"

static et_tokenizer *g_l2, *g_l2meta, *g_l3;

static et_tokenizer *load(const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s%s", TOKDIR, file);
    et_tokenizer *tk = NULL;
    et_status st = et_tokenizer_load(path, &tk);
    ET_ASSERT(!st, "%s", et_status_msg(st));
    return tk;
}

static bool has_msg(et_status st, const char *part) {
    bool ok = st && strstr(et_status_msg(st), part);
    if (!ok) fprintf(stderr, "  status: %s (wanted \"%s\")\n", et_status_msg(st), part);
    et_status_free(st);
    return ok;
}

static int count(const et_ids *v, int32_t x) {
    int c = 0;
    for (size_t i = 0; i < v->len; i++) c += v->data[i] == x;
    return c;
}

static char *render(const char *tmpl, const et_chat_turn *t, size_t n, const et_template_opts *o,
                    bool gen) {
    char *s = NULL;
    et_status st = et_template_render(et_template_find(tmpl), g_l2, t, n, o, gen, &s);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    return s;
}

static void test_lookup(void) {
    const char *names[] = {"vicuna_v1", "llava_v1", "llava_llama_2", "llama_3", "plain"};
    for (int i = 0; i < 5; i++) {
        const et_template *t = et_template_find(names[i]);
        CHECK(t && !strcmp(et_template_name(t), names[i]), "%s", names[i]);
    }
    CHECK(strstr(et_template_system(et_template_find("vicuna_v1")), "curious user"));
    CHECK(strstr(et_template_system(et_template_find("llava_v1")), "curious human"));
    CHECK(et_template_find("vicuna") == NULL && et_template_find(NULL) == NULL);
    const et_template *t = (const et_template *)1;
    et_status st = et_template_get("mistral", &t);
    CHECK(t == NULL && et_status_code(st) == ET_ERR_INVALID);
    CHECK(strstr(et_status_msg(st), "\"mistral\"") && strstr(et_status_msg(st), "llava_llama_2"),
          "%s", et_status_msg(st));
    et_status_free(st);
    CHECK(!et_template_get("llama_3", &t) && t == et_template_find("llama_3"));
}

static void test_errors(void) {
    const et_template *v = et_template_find("vicuna_v1");
    et_ids ids = {0}, lab = {0};
    et_template_opts o;
    et_template_opts_init(&o);
    // empty
    CHECK(has_msg(et_template_encode(v, g_l2, NULL, 0, &o, &ids, &lab, NULL), "empty"));
    et_chat_turn only_gpt[] = {{"gpt", "hello"}};
    CHECK(has_msg(et_template_encode(v, g_l2, only_gpt, 1, &o, &ids, &lab, NULL), "empty"));
    et_chat_turn only_sys[] = {{"system", "s"}};
    CHECK(has_msg(et_template_encode(v, g_l2, only_sys, 1, &o, &ids, &lab, NULL), "empty"));
    // roles do not alternate
    et_chat_turn hh[] = {{"human", "a"}, {"human", "b"}};
    CHECK(has_msg(et_template_encode(v, g_l2, hh, 2, &o, &ids, &lab, NULL), "alternate"));
    et_chat_turn hgg[] = {{"human", "a"}, {"gpt", "b"}, {"assistant", "c"}};
    CHECK(has_msg(et_template_encode(v, g_l2, hgg, 3, &o, &ids, &lab, NULL), "turn 2"));
    // unknown role, system not first, not a string
    et_chat_turn bad_role[] = {{"human", "a"}, {"bot", "b"}};
    CHECK(has_msg(et_template_encode(v, g_l2, bad_role, 2, &o, &ids, &lab, NULL), "\"bot\""));
    et_chat_turn late_sys[] = {{"human", "a"}, {"system", "b"}};
    CHECK(has_msg(et_template_encode(v, g_l2, late_sys, 2, &o, &ids, &lab, NULL), "first"));
    et_chat_turn null_val[] = {{"human", "a"}, {"gpt", NULL}};
    CHECK(has_msg(et_template_encode(v, g_l2, null_val, 2, &o, &ids, &lab, NULL),
                  "turn 1: \"value\" is not a string"));
    CHECK(ids.len == 0 && lab.len == 0);
    // llama_2 needs a first human text; plain needs [human with media, gpt]
    et_chat_turn empty_first[] = {{"human", ""}, {"gpt", "b"}};
    CHECK(has_msg(et_template_encode(et_template_find("llava_llama_2"), g_l2, empty_first, 2, &o,
                                     &ids, &lab, NULL),
                  "first human turn is empty"));
    et_chat_turn plain_noimg[] = {{"human", "hi"}, {"gpt", "b"}};
    CHECK(has_msg(
        et_template_encode(et_template_find("plain"), g_l2, plain_noimg, 2, &o, &ids, &lab, NULL),
        "plain"));
    // a prompt must end with a human turn
    et_chat_turn hg[] = {{"human", "a"}, {"gpt", "b"}};
    CHECK(has_msg(et_template_prompt(v, g_l2, hg, 2, &o, &ids, NULL), "end with a human"));
    et_ids_free(&ids);
    et_ids_free(&lab);
}

static void test_turns_from_json(void) {
    cJSON *j = cJSON_Parse(
        "[{\"from\":\"human\",\"value\":\"<image>\\nhi\"},"
        "{\"from\":\"gpt\",\"value\":\"yo\"}]");
    et_chat_turn *t = NULL;
    size_t n = 0;
    et_status st = et_chat_turns_from_json(j, "s.json: sample 3", &t, &n);
    CHECK(!st && n == 2 && !strcmp(t[0].from, "human") && !strcmp(t[1].value, "yo"));
    free(t);
    cJSON_Delete(j);
    const char *bad[][2] = {
        {"{\"from\":\"human\"}", "is not an array"},
        {"[{\"from\":\"human\",\"value\":3}]", "conversations[0].value is not a string"},
        {"[{\"from\":\"human\",\"value\":\"a\"},{\"value\":\"b\"}]",
         "conversations[1].from is missing"},
        {"[{\"from\":\"human\",\"value\":null}]", "value is not a string"},
        {"[\"text\"]", "conversations[0] is not an object"}};
    for (int i = 0; i < 5; i++) {
        j = cJSON_Parse(bad[i][0]);
        st = et_chat_turns_from_json(j, "s.json: sample 3", &t, &n);
        CHECK(t == NULL && n == 0 && et_status_code(st) == ET_ERR_FORMAT);
        CHECK(st && strstr(et_status_msg(st), "s.json: sample 3"));
        CHECK(has_msg(st, bad[i][1]), "case %d", i);
        cJSON_Delete(j);
    }
}

static void test_move_media(void) {
    et_template_opts o;
    et_template_opts_init(&o);
    et_chat_turn t[] = {{"human", "  What is <image> this?\n <image>"}, {"gpt", "A face."}};
    char *s = render("vicuna_v1", t, 2, &o, false);
    CHECK(s && strstr(s, "USER: <image>\nWhat is  this? ASSISTANT: A face.</s>"), "%s", s);
    free(s);
    o.move_media = false;
    s = render("vicuna_v1", t, 2, &o, false);
    CHECK(s && strstr(s, "USER:   What is <image> this?\n <image> ASSISTANT:"), "%s", s);
    free(s);
    // both media: <image> is moved first, then <video> ends up in front of it
    o.move_media = true;
    et_chat_turn both[] = {{"human", "a <image> b <video>"}, {"gpt", "c"}};
    s = render("vicuna_v1", both, 2, &o, false);
    CHECK(s && strstr(s, "USER: <video>\n<image>\na  b ASSISTANT:"), "%s", s);
    free(s);
    // Python's strip: NBSP, ideographic space, \x1c are whitespace; zero-width space is not
    et_chat_turn ws[] = {{"human", "\xc2\xa0<image>\xe3\x80\x80 x\x1c"}, {"gpt", "\xe2\x80\x8b"}};
    s = render("vicuna_v1", ws, 2, &o, false);
    CHECK(s && strstr(s, "USER: <image>\nx ASSISTANT: \xe2\x80\x8b</s>"), "%s", s);
    free(s);
    // placeholders in ids: moved -> one image id right after BOS-less chunk split
    et_ids ids = {0}, lab = {0};
    et_template_info info;
    CHECK(!et_template_encode(et_template_find("vicuna_v1"), g_l2, t, 2, &o, &ids, &lab, &info));
    CHECK(info.n_images == 1 && count(&ids, ET_IMAGE_TOKEN_INDEX) == 1);
    CHECK(ids.data[0] == et_tokenizer_bos_id(g_l2) && lab.data[0] == ET_IGNORE_INDEX);
    o.move_media = false;
    o.image_id = -7;
    CHECK(!et_template_encode(et_template_find("vicuna_v1"), g_l2, t, 2, &o, &ids, &lab, &info));
    CHECK(info.n_images == 2 && count(&ids, -7) == 2 && count(&ids, ET_IMAGE_TOKEN_INDEX) == 0);
    CHECK(count(&ids, et_tokenizer_bos_id(g_l2)) == 1, "BOS only once across chunks");
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] == -7) CHECK(lab.data[i] == ET_IGNORE_INDEX);
    et_chat_turn vid[] = {{"human", "clip <video>"}, {"gpt", "<video> moves too"}};
    o.video_id = -9;
    CHECK(!et_template_encode(et_template_find("llama_3"), g_l3, vid, 2, &o, &ids, &lab, &info));
    CHECK(info.n_videos == 2 && count(&ids, -9) == 2 && info.n_images == 0);
    et_ids_free(&ids);
    et_ids_free(&lab);
}

static void test_render_templates(void) {
    et_template_opts o;
    et_template_opts_init(&o);
    et_chat_turn t[] = {
        {"system", "SYS"}, {"human", "q1"}, {"gpt", "a1"}, {"human", "q2"}, {"gpt", "a2"}};
    char *s = render("vicuna_v1", t, 5, &o, false);
    CHECK(s && !strcmp(s, "SYS USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>"), "%s", s);
    free(s);
    s = render("llava_llama_2", t, 5, &o, false);
    CHECK(s && !strcmp(s,
                       "[INST] <<SYS>>\nSYS\n<</SYS>>\n\nq1 [/INST] a1 </s><s>[INST] q2 "
                       "[/INST] a2 </s>"),
          "%s", s);
    free(s);
    char *l3 = NULL;
    CHECK(!et_template_render(et_template_find("llama_3"), g_l3, t, 3, &o, false, &l3));
    CHECK(l3 && !strcmp(l3,
                        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS"
                        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nq1<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\na1<|eot_id|>"),
          "%s", l3);
    free(l3);
    // empty answer: LLaVA writes "ASSISTANT:" without separator
    et_chat_turn e[] = {{"human", "q"}, {"gpt", ""}, {"human", "r"}, {"gpt", "b"}};
    s = render("llava_v1", e, 4, &o, false);
    CHECK(s && strstr(s, "questions. USER: q ASSISTANT:USER: r ASSISTANT: b</s>"), "%s", s);
    free(s);
}

static void test_prompt(void) {
    et_template_opts o;
    et_template_opts_init(&o);
    et_chat_turn q[] = {{"human", "What emotions are conveyed by this face?<image>"}};
    char *s = render("vicuna_v1", q, 1, &o, true);
    const char *want =
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's "
        "questions. USER: <image>\nWhat emotions are conveyed by this face? "
        "ASSISTANT:";
    CHECK(s && !strcmp(s, want), "%s", s);
    free(s);
    et_ids ids = {0}, lab = {0};
    et_template_stop stop;
    CHECK(!et_template_prompt(et_template_find("vicuna_v1"), g_l2, q, 1, &o, &ids, &stop));
    CHECK(!strcmp(stop.stop_str, "</s>") && stop.stop_id == et_tokenizer_eos_id(g_l2) &&
          stop.eos_id == et_tokenizer_eos_id(g_l2));
    CHECK(count(&ids, ET_IMAGE_TOKEN_INDEX) == 1 && ids.data[0] == et_tokenizer_bos_id(g_l2));
    // The prompt is a prefix of the training sequence with the answer (same chunking).
    et_chat_turn qa[] = {{"human", q[0].value}, {"gpt", "Happy."}};
    et_ids full = {0};
    et_template_info info;
    CHECK(!et_template_encode(et_template_find("vicuna_v1"), g_l2, qa, 2, &o, &full, &lab, &info));
    CHECK(full.len > ids.len && !memcmp(full.data, ids.data, ids.len * sizeof(int32_t)));
    // The first supervised label is right after the prompt.
    size_t first = 0;
    while (first < lab.len && lab.data[first] == ET_IGNORE_INDEX) first++;
    CHECK(first == ids.len, "first supervised %zu, prompt %zu", first, ids.len);
    CHECK(lab.data[lab.len - 1] == et_tokenizer_eos_id(g_l2), "</s> supervised");
    // llama_3: stop <|eot_id|>, prompt ends with the assistant header
    CHECK(!et_template_prompt(et_template_find("llama_3"), g_l3, q, 1, &o, &ids, &stop));
    int32_t eot = et_tokenizer_token_to_id(g_l3, "<|eot_id|>", 10);
    CHECK(!strcmp(stop.stop_str, "<|eot_id|>") && stop.stop_id == eot && eot >= 0);
    char *d3 = et_tokenizer_decode(g_l3, ids.data, ids.len, false, NULL);
    const char *tail = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK(d3 && strlen(d3) > strlen(tail) && !strcmp(d3 + strlen(d3) - strlen(tail), tail), "%s",
          d3);
    free(d3);
    CHECK(count(&ids, et_tokenizer_bos_id(g_l3)) == 1, "one BOS");
    // multi-turn prompt ending with a gpt turn is an error, with a human turn fine
    et_chat_turn m[] = {{"human", "<image>a"}, {"gpt", "b"}, {"human", "c"}};
    CHECK(!et_template_prompt(et_template_find("llava_llama_2"), g_l2, m, 3, &o, &ids, NULL));
    s = render("llava_llama_2", m, 3, &o, true);
    CHECK(s && strstr(s, "a [/INST] b </s><s>[INST] c [/INST]") && s[strlen(s) - 1] == ']', "%s",
          s);
    free(s);
    et_ids_free(&ids);
    et_ids_free(&lab);
    et_ids_free(&full);
}

static void test_truncation(void) {
    et_template_opts o;
    et_template_opts_init(&o);
    et_chat_turn t[] = {{"human", "<image>\nWhat is the emotion of this face?"},
                        {"gpt", "The person looks happy, with a broad smile."}};
    const et_template *v = et_template_find("vicuna_v1");
    et_ids ids = {0}, lab = {0}, full = {0}, flab = {0};
    et_template_info info;
    CHECK(!et_template_encode(v, g_l2, t, 2, &o, &full, &flab, &info));
    CHECK(!info.truncated && info.has_supervised && info.full_len == full.len);
    size_t first = 0;
    while (flab.data[first] == ET_IGNORE_INDEX) first++;
    // cut in the middle of the answer: prefix of the full encoding, fewer supervised labels
    o.max_len = (int64_t)first + 3;
    CHECK(!et_template_encode(v, g_l2, t, 2, &o, &ids, &lab, &info));
    CHECK(info.truncated && info.full_len == full.len && ids.len == (size_t)o.max_len);
    CHECK(!memcmp(ids.data, full.data, ids.len * 4) && !memcmp(lab.data, flab.data, lab.len * 4));
    CHECK(info.n_supervised == 3 && info.has_supervised && !info.mismatch);
    // cut before the answer: no supervised token left, not a mismatch
    o.max_len = (int64_t)first;
    CHECK(!et_template_encode(v, g_l2, t, 2, &o, &ids, &lab, &info));
    CHECK(info.truncated && ids.len == first && info.n_supervised == 0 && !info.has_supervised);
    CHECK(!info.mismatch);
    // same for llama_3
    CHECK(!et_template_encode(et_template_find("llama_3"), g_l3, t, 2, &o, &ids, &lab, &info));
    CHECK(info.truncated && ids.len == first);
    o.max_len = 0;  // no limit
    CHECK(!et_template_encode(v, g_l2, t, 2, &o, &ids, &lab, &info));
    CHECK(!info.truncated && ids.len == full.len);
    et_ids_free(&ids);
    et_ids_free(&lab);
    et_ids_free(&full);
    et_ids_free(&flab);
}

static void test_mismatch(void) {
    et_template_opts o;
    et_template_opts_init(&o);
    const et_template *v = et_template_find("vicuna_v1");
    et_ids ids = {0}, lab = {0};
    et_template_info info;
    // a trailing human turn: LLaVA stops at the unfinished round and reports a mismatch
    et_chat_turn t[] = {{"human", "q"}, {"gpt", "a"}, {"human", "r"}};
    CHECK(!et_template_encode(v, g_l2, t, 3, &o, &ids, &lab, &info));
    CHECK(info.mismatch && info.mismatch_total_len == (int64_t)ids.len &&
          info.mismatch_cur_len < info.mismatch_total_len);
    CHECK(info.n_supervised == 0 && count(&lab, ET_IGNORE_INDEX) == (int)lab.len);
    // a literal <unk> is LLaVA's pad: total_len counts one id less
    et_chat_turn u[] = {{"human", "q <unk>"}, {"gpt", "a"}};
    CHECK(!et_template_encode(v, g_l2, u, 2, &o, &ids, &lab, &info));
    CHECK(info.mismatch && info.mismatch_total_len + 1 == (int64_t)ids.len);
    o.pad_id = -1;  // no pad: consistent
    CHECK(!et_template_encode(v, g_l2, u, 2, &o, &ids, &lab, &info));
    CHECK(!info.mismatch && info.has_supervised);
    // legacy detection: the Metaspace-"first" tokenizer is non-legacy, and with this
    // vocabulary LLaVA's -1 for later rounds does not add up (as LLaVA reports it)
    o.pad_id = ET_TEMPLATE_PAD_UNK;
    et_chat_turn m[] = {{"human", "q"}, {"gpt", "a"}, {"human", "r"}, {"gpt", "b"}};
    CHECK(!et_template_encode(v, g_l2meta, m, 4, &o, &ids, &lab, &info));
    CHECK(info.mismatch);
    o.legacy = 1;
    CHECK(!et_template_encode(v, g_l2meta, m, 4, &o, &ids, &lab, &info));
    CHECK(!info.mismatch && info.has_supervised && info.n_rounds == 2);
    o.legacy = -1;
    CHECK(!et_template_encode(v, g_l2, m, 4, &o, &ids, &lab, &info));
    CHECK(!info.mismatch && info.has_supervised);
    // leading gpt turn dropped as LLaVA does
    et_chat_turn g[] = {{"gpt", "x"}, {"human", "q"}, {"gpt", "a"}};
    CHECK(!et_template_encode(v, g_l2, g, 3, &o, &ids, &lab, &info));
    CHECK(info.dropped_leading_gpt && !info.mismatch && info.n_rounds == 1);
    et_ids_free(&ids);
    et_ids_free(&lab);
}

static void test_labels_spans(void) {
    // vicuna: labels are exactly the answer ids + </s> per round
    et_template_opts o;
    et_template_opts_init(&o);
    et_chat_turn t[] = {
        {"human", "hello"}, {"gpt", "happy face"}, {"human", "why"}, {"gpt", "smile"}};
    et_ids ids = {0}, lab = {0};
    et_template_info info;
    CHECK(!et_template_encode(et_template_find("vicuna_v1"), g_l2, t, 4, &o, &ids, &lab, &info));
    et_ids sup = {0};
    for (size_t i = 0; i < lab.len; i++)
        if (lab.data[i] != ET_IGNORE_INDEX) {
            CHECK(lab.data[i] == ids.data[i]);
            et_ids_push(&sup, lab.data[i]);
        }
    char *dec = et_tokenizer_decode(g_l2, sup.data, sup.len, false, NULL);
    CHECK(dec && !strcmp(dec, "happy face</s> smile</s>"), "%s", dec);
    free(dec);
    // llama_3 (LLaVA-NeXT rule): assistant turns + every header/eot/BOS token
    CHECK(!et_template_encode(et_template_find("llama_3"), g_l3, t, 4, &o, &ids, &lab, &info));
    CHECK(lab.data[0] == et_tokenizer_bos_id(g_l3), "LLaVA-NeXT supervises BOS");
    sup.len = 0;
    for (size_t i = 0; i < lab.len; i++)
        if (lab.data[i] != ET_IGNORE_INDEX) et_ids_push(&sup, lab.data[i]);
    dec = et_tokenizer_decode(g_l3, sup.data, sup.len, false, NULL);
    CHECK(dec && strstr(dec, "assistant<|end_header_id|>\n\nhappy face<|eot_id|>") &&
              !strstr(dec, "hello"),
          "%s", dec);
    free(dec);
    et_ids_free(&ids);
    et_ids_free(&lab);
    et_ids_free(&sup);
}

// data.supervise=all: the same ids as the LLaVA rule, every label equal to its id except at
// media placeholders, for every template, and no mismatch even where LLaVA would report one.
static void test_supervise_all(void) {
    et_template_opts o, oa;
    et_template_opts_init(&o);
    et_template_opts_init(&oa);
    oa.supervise_all = true;
    et_chat_turn t[] = {
        {"human", "<image>\nhello"}, {"gpt", "happy face"}, {"human", "why"}, {"gpt", "smile"}};
    et_chat_turn plain[] = {{"human", "<image>\n"}, {"gpt", "a smiling face"}};
    const char *names[] = {"vicuna_v1", "llava_v1", "llava_llama_2", "llama_3", "plain"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const bool is_plain = !strcmp(names[k], "plain");
        et_tokenizer *tk = !strcmp(names[k], "llama_3") ? g_l3 : g_l2;
        const et_chat_turn *tt = is_plain ? plain : t;
        size_t n = is_plain ? 2 : 4;
        et_ids ids = {0}, lab = {0}, ids_a = {0}, lab_a = {0};
        et_template_info info, info_a;
        CHECK(!et_template_encode(et_template_find(names[k]), tk, tt, n, &o, &ids, &lab, &info));
        CHECK(!et_template_encode(et_template_find(names[k]), tk, tt, n, &oa, &ids_a, &lab_a,
                                  &info_a));
        CHECK(ids.len == ids_a.len && ids.len > 4, "%s", names[k]);
        size_t n_media = 0, n_diff = 0;
        for (size_t i = 0; i < ids.len && i < ids_a.len; i++) {
            n_diff += ids.data[i] != ids_a.data[i];
            if (ids_a.data[i] == ET_IMAGE_TOKEN_INDEX) {
                n_media++;
                CHECK(lab_a.data[i] == ET_IGNORE_INDEX, "%s: placeholder supervised", names[k]);
            } else {
                CHECK(lab_a.data[i] == ids_a.data[i], "%s: label %zu", names[k], i);
            }
        }
        CHECK(n_diff == 0 && n_media == 1, "%s: %zu ids differ, %zu placeholders", names[k], n_diff,
              n_media);
        CHECK(info_a.n_supervised == ids_a.len - 1 && info_a.n_supervised > info.n_supervised,
              "%s: %zu supervised of %zu (answers: %zu)", names[k], info_a.n_supervised, ids_a.len,
              info.n_supervised);
        CHECK(!info_a.mismatch);
        et_ids_free(&ids), et_ids_free(&lab), et_ids_free(&ids_a), et_ids_free(&lab_a);
    }
    // a conversation LLaVA's round check rejects (a literal "</s>" in a turn) keeps its labels
    et_chat_turn bad[] = {{"human", "hi</s>"}, {"gpt", "ok"}};
    et_ids ids = {0}, lab = {0};
    et_template_info info;
    CHECK(!et_template_encode(et_template_find("vicuna_v1"), g_l2, bad, 2, &o, &ids, &lab, &info));
    CHECK(info.mismatch, "LLaVA reports a mismatch here");
    CHECK(!et_template_encode(et_template_find("vicuna_v1"), g_l2, bad, 2, &oa, &ids, &lab, &info));
    CHECK(!info.mismatch && info.n_supervised == ids.len);
    et_ids_free(&ids), et_ids_free(&lab);
}

// Hostile text: random pieces (separators, special tokens, media, whitespace, invalid UTF-8)
// never crash, and the outputs keep their invariants.
static void test_random_robustness(void) {
    static const char *const pieces[] = {"<image>",
                                         "<video>",
                                         "</s>",
                                         "<s>",
                                         " ASSISTANT: ",
                                         "USER:",
                                         "[/INST] ",
                                         "[INST]",
                                         "<unk>",
                                         "<|eot_id|>",
                                         "<|begin_of_text|>",
                                         " ",
                                         "\n",
                                         "\xc2\xa0",
                                         "\xe3\x80\x80",
                                         "a",
                                         "face",
                                         "\xff",
                                         "\xe2\x82",
                                         "\xf0\x9f\x98\x80",
                                         "<image",
                                         "video>",
                                         "\t\n",
                                         "<<SYS>>"};
    const int np = (int)(sizeof pieces / sizeof pieces[0]);
    const char *roles[] = {"human", "gpt", "user", "assistant", "system", "robot"};
    const char *names[] = {"vicuna_v1", "llava_v1", "llava_llama_2", "llama_3", "plain"};
    et_tokenizer *toks[] = {g_l2, g_l2meta, g_l3};
    et_ids ids = {0}, lab = {0};
    char text[6][200];
    et_chat_turn t[6];
    int n_ok = 0;
    for (int it = 0; it < 600; it++) {
        int n = 1 + (int)(test_uniform() * 6);
        for (int j = 0; j < n; j++) {
            text[j][0] = 0;
            int k = (int)(test_uniform() * 8);
            for (int q = 0; q < k; q++) strcat(text[j], pieces[(int)(test_uniform() * np)]);
            double r = test_uniform();
            t[j].from = r < 0.9 ? roles[j % 2] : roles[(int)(test_uniform() * 6)];
            t[j].value = text[j];
        }
        et_template_opts o;
        et_template_opts_init(&o);
        o.max_len = test_uniform() < 0.3 ? (int64_t)(test_uniform() * 40) : 2048;
        o.move_media = test_uniform() < 0.7;
        o.legacy = (int)(test_uniform() * 3) - 1;
        const et_template *tp = et_template_find(names[it % 5]);
        et_tokenizer *tk = toks[(it / 5) % 3];
        et_template_info info;
        et_status st = et_template_encode(tp, tk, t, (size_t)n, &o, &ids, &lab, &info);
        if (st) {
            CHECK(ids.len == 0 && lab.len == 0 && et_status_msg(st)[0]);
            et_status_free(st);
        } else {
            n_ok++;
            CHECK(ids.len == lab.len &&
                  ids.len == (info.truncated ? (size_t)o.max_len : info.full_len));
            size_t sup = 0;
            for (size_t i = 0; i < ids.len; i++) {
                CHECK(lab.data[i] == ET_IGNORE_INDEX || lab.data[i] == ids.data[i]);
                sup += lab.data[i] != ET_IGNORE_INDEX;
            }
            CHECK(sup == info.n_supervised && info.has_supervised == (sup > 0));
            CHECK(!info.mismatch || sup == 0);
        }
        st = et_template_prompt(tp, tk, t, (size_t)n, &o, &ids, NULL);
        CHECK(!st || ids.len == 0);
        et_status_free(st);
    }
    CHECK(n_ok > 100, "only %d conversations encoded", n_ok);
    et_ids_free(&ids);
    et_ids_free(&lab);
}

int main(void) {
    g_l2 = load("llama2_legacy.json");
    g_l2meta = load("llama2_meta.json");
    g_l3 = load("llama3.json");
    RUN(test_lookup);
    RUN(test_errors);
    RUN(test_turns_from_json);
    RUN(test_move_media);
    RUN(test_render_templates);
    RUN(test_prompt);
    RUN(test_truncation);
    RUN(test_mismatch);
    RUN(test_labels_spans);
    RUN(test_supervise_all);
    RUN(test_random_robustness);
    et_tokenizer_free(g_l2);
    et_tokenizer_free(g_l2meta);
    et_tokenizer_free(g_l3);
    return test_summary();
}
