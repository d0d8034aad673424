// tests/test_attr_prompt.c - EMO-LLaMA's age-gender-race prompt (data/attr_prompt.c): template
// checks, rendering, where the prompt goes in the first human turn, and the data loader
// applying it per sample (ids equal the template encoding of the rewritten conversation; a
// sample without the attributes is skipped and reported under "attributes", naming the
// file, the sample and the field). The LLaVA parity of prompt-bearing conversations is in
// tests/test_golden_template.c (the agr_* cases).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/attr_prompt.h"
#include "../data/dataloader.h"
#include "../data/dataset.h"
#include "../data/template.h"
#include "../data/tokenizer.h"
#include "test_util.h"

static void expect_apply(const char *tmpl, et_attr_position pos, const char *value,
                         const char *want) {
    et_attr_prompt p = {tmpl, pos};
    char *out = NULL;
    et_status s = et_attr_prompt_apply(&p, value, "34", "male", "Asian", &out);
    CHECK(!s && out && !strcmp(out, want), "apply(\"%s\", \"%s\") = \"%s\", want \"%s\" %s", tmpl,
          value, out ? out : "", want, s ? et_status_msg(s) : "");
    et_status_free(s);
    free(out);
}

static void test_templates(void) {
    const char *good[] = {ET_ATTR_PROMPT_DEFAULT, "{race}{race} {{literal}} {age}",
                          "no placeholder", "{{}}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        et_status s = et_attr_prompt_check(good[i], "attribute_prompt.template");
        CHECK(!s, "\"%s\": %s", good[i], s ? et_status_msg(s) : "");
        et_status_free(s);
    }
    const char *bad[][2] = {{"{name} is here", "{name}"},
                            {"open {age", "{age"},
                            {"close } here", "lone '}'"},
                            {"{Age}", "{Age}"},
                            {"", "empty"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        et_status s = et_attr_prompt_check(bad[i][0], "attribute_prompt.template");
        CHECK(s && strstr(et_status_msg(s), "attribute_prompt.template") &&
                  strstr(et_status_msg(s), bad[i][1]),
              "\"%s\": %s", bad[i][0], s ? et_status_msg(s) : "accepted");
        et_status_free(s);
    }
}

static void test_render(void) {
    char *out = NULL;
    et_status s = et_attr_prompt_render("{age}/{gender}/{race} {{x}}", "7", "female", "dark", &out);
    CHECK(!s && !strcmp(out, "7/female/dark {x}"), "%s", out ? out : et_status_msg(s));
    free(out);
    s = et_attr_prompt_render(ET_ATTR_PROMPT_DEFAULT, "30", NULL, "dark", &out);
    CHECK(s && strstr(et_status_msg(s), "attributes.gender") && !out, "missing gender: %s",
          s ? et_status_msg(s) : "accepted");
    et_status_free(s);
    s = et_attr_prompt_render("only {age}", "30", NULL, NULL, &out);  // unused ones may miss
    CHECK(!s && !strcmp(out, "only 30"), "%s", out ? out : et_status_msg(s));
    free(out);
}

static void test_positions(void) {
    const char *t = "[{age} {gender} {race}]";
    expect_apply(t, ET_ATTR_PREFIX, "<image>\nWhat is it?", "<image>\n[34 male Asian] What is it?");
    expect_apply(t, ET_ATTR_PREFIX, "What is it?\n<image>", "[34 male Asian] What is it?\n<image>");
    expect_apply(t, ET_ATTR_PREFIX, "<image>", "<image>\n[34 male Asian]");
    expect_apply(t, ET_ATTR_PREFIX, " <image><video>\n  Q", " <image><video>\n  [34 male Asian] Q");
    expect_apply(t, ET_ATTR_PREFIX, "", "[34 male Asian]");
    expect_apply(t, ET_ATTR_SUFFIX, "<image>\nWhat is it?", "<image>\nWhat is it? [34 male Asian]");
}

static void test_turns(void) {
    et_chat_turn turns[4] = {
        {"system", "be brief"}, {"user", "<image>\nQ1"}, {"gpt", "A1"}, {"human", "Q2"}};
    et_attr_prompt p = {"<{gender}>", ET_ATTR_PREFIX};
    char *owned = NULL;
    et_status s = et_attr_prompt_turns(&p, turns, 4, "1", "f", "r", &owned);
    CHECK(!s && turns[1].value == owned && !strcmp(owned, "<image>\n<f> Q1"), "%s",
          owned ? owned : et_status_msg(s));
    CHECK(!strcmp(turns[0].value, "be brief") && !strcmp(turns[2].value, "A1") &&
              !strcmp(turns[3].value, "Q2"),
          "only the first human turn changes");
    free(owned);
}

// The loader rewrites each sample's first human turn; a sample without attributes fails.
static void test_loader(void) {
    static const char json[] =
        "[{\"id\": \"a\", \"attributes\": {\"age\": 34, \"gender\": \"male\", \"race\": \"Asian\"},"
        " \"conversations\": [{\"from\": \"human\", \"value\": \"What emotion?\"},"
        " {\"from\": \"gpt\", \"value\": \"happiness\"}]},"
        " {\"id\": \"b\", \"attributes\": {\"age\": \"young adult\", \"gender\": \"female\"},"
        " \"conversations\": [{\"from\": \"human\", \"value\": \"What emotion?\"},"
        " {\"from\": \"gpt\", \"value\": \"anger\"}]}]";
    et_tokenizer *tok = NULL;
    et_status s = et_tokenizer_load("configs/tiny-emola/tokenizer.json", &tok);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    if (s) return et_status_free(s);
    et_dataset_opts o = {0};
    o.require_answer = true;
    et_dataset *ds = NULL;
    s = et_dataset_open_memory(json, sizeof json - 1, "mem.json", &o, &ds);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    et_attr_prompt p = {ET_ATTR_PROMPT_DEFAULT, ET_ATTR_PREFIX};
    et_loader_opts lo = et_loader_opts_default();
    lo.batch_size = 1, lo.max_len = 256, lo.tmpl = et_template_find("vicuna_v1"), lo.tok = tok;
    lo.attr_prompt = &p, lo.drop_last = true;
    et_loader *l = NULL;
    if (!s) s = et_loader_new(ds, &lo, &l);
    CHECK(!s, "%s", s ? et_status_msg(s) : "");
    if (s) {
        et_status_free(s);
        et_dataset_close(ds);
        et_tokenizer_free(tok);
        return;
    }
    et_batch b;
    s = et_loader_next(l, &b);
    CHECK(!s && b.B == 1 && !strcmp(b.sample_id[0], "a"), "first batch: %s",
          s ? et_status_msg(s) : "");
    if (!s) {
        et_chat_turn want[2] = {
            {"human", "Attributes of the person: age 34, gender male, race Asian. What emotion?"},
            {"gpt", "happiness"}};
        et_template_opts to;
        et_template_opts_init(&to);
        to.max_len = 256;
        et_ids ids = {0}, labels = {0};
        et_template_info info;
        et_status e = et_template_encode(lo.tmpl, tok, want, 2, &to, &ids, &labels, &info);
        bool same = !e && (int64_t)ids.len == b.ids[0]->numel;
        for (size_t i = 0; same && i < ids.len; i++)
            same = ids.data[i] == ET_DATA(int32_t, b.ids[0])[i] &&
                   labels.data[i] == ET_DATA(int32_t, b.labels[0])[i];
        CHECK(same, "the loader's ids / labels equal the rewritten conversation's");
        et_status_free(e);
        et_ids_free(&ids), et_ids_free(&labels);
        et_batch_free(&b);
    }
    CHECK(et_loader_bad_samples(l) == 1, "sample b (no race) is skipped: %lld",
          (long long)et_loader_bad_samples(l));
    char rep[2048];
    et_loader_report(l, rep, sizeof rep);
    CHECK(strstr(rep, "attributes") && strstr(rep, "mem.json") && strstr(rep, "attributes.race"),
          "report names the reason, the file and the field: %s", rep);
    et_loader_free(l);
    et_dataset_close(ds);
    et_tokenizer_free(tok);
}

int main(void) {
    RUN(test_templates);
    RUN(test_render);
    RUN(test_positions);
    RUN(test_turns);
    RUN(test_loader);
    return test_summary();
}
