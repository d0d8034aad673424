// tests/test_golden_metrics.c - train/eval/metrics.c against EmoLA's rules and the `rouge` package
// (fixtures in tests/golden/metrics/, written by tools/golden/gen_metrics.py).
//
// Every emotion and AU case must parse to exactly the class / AU set the Python rules give
// and the ROUGE-L f, p, r must match to 1e-12; the whole-set numbers (accuracy, UAR,
// confusion matrix, per-AU F1 for the FABA/DISFA/BP4D/GFT/EmotioNet selections, mean F1,
// S_ge, REGE) to 1e-9. GOLDEN_VERBOSE=1 prints every case.
#include <cjson/cJSON.h>

#include "../core/fileio.h"
#include "train/eval/metrics.h"
#include "test_util.h"

#define DIR EMOTUNE_SOURCE_DIR "/tests/golden/metrics/"

static int verbose;

// Parse a JSON Lines buffer into an array of objects.
static cJSON *read_jsonl(const char *path) {
    char *buf;
    size_t len;
    et_status s = et_read_file(path, (size_t)64 << 20, &buf, &len);
    if (s) {
        fprintf(stderr, "%s\n", et_status_msg(s));
        et_status_free(s);
        return NULL;
    }
    cJSON *arr = cJSON_CreateArray();
    const char *p = buf;
    while (*p) {
        while (*p == '\n' || *p == ' ' || *p == '\r') p++;
        if (!*p) break;
        const char *end = NULL;
        cJSON *o = cJSON_ParseWithOpts(p, &end, 0);
        if (!o) {
            fprintf(stderr, "%s: bad JSON line near byte %ld\n", path, (long)(p - buf));
            break;
        }
        cJSON_AddItemToArray(arr, o);
        p = end;
    }
    free(buf);
    return arr;
}

static cJSON *read_json(const char *path) {
    char *buf;
    et_status s = et_read_file(path, (size_t)64 << 20, &buf, NULL);
    if (s) {
        fprintf(stderr, "%s\n", et_status_msg(s));
        et_status_free(s);
        return NULL;
    }
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void check_rouge(const cJSON *c, const char *pred, const char *ref, int id) {
    const cJSON *rg = cJSON_GetObjectItemCaseSensitive(c, "rouge");
    et_rouge_l_scores sc;
    et_status s = et_rouge_l(pred, ref, &sc);
    CHECK(s == NULL, "case %d: %s", id, et_status_msg(s));
    et_status_free(s);
    CHECK(sc.defined == !cJSON_IsNull(rg), "case %d: rouge defined %d, python %s", id, sc.defined,
          cJSON_IsNull(rg) ? "raises" : "has a value");
    if (sc.defined && !cJSON_IsNull(rg)) {
        double f = jnum(rg, "f"), p = jnum(rg, "p"), r = jnum(rg, "r");
        CHECK(fabs(sc.f - f) <= 1e-12 && fabs(sc.p - p) <= 1e-12 && fabs(sc.r - r) <= 1e-12,
              "case %d: rouge f/p/r %.17g %.17g %.17g, python %.17g %.17g %.17g", id, sc.f, sc.p,
              sc.r, f, p, r);
        if (verbose && (sc.f != f || sc.p != p || sc.r != r))
            printf("  case %d: rouge not bit-exact (|df| %.3g)\n", id, fabs(sc.f - f));
    }
}

static void test_emotion_cases(void) {
    cJSON *cases = read_jsonl(DIR "emotion_cases.jsonl");
    cJSON *sum = read_json(DIR "summary.json");
    CHECK(cases && sum, "fixtures missing: run tools/golden/gen_metrics.py");
    if (!cases || !sum) goto done;
    int n = cJSON_GetArraySize(cases);
    CHECK(n >= 200, "only %d emotion cases", n);
    et_emo_eval_opts opts = {.kind = ET_EVAL_EMOTION};
    et_emo_eval *ev;
    et_status s = et_emo_eval_new(&opts, &ev);
    CHECK(s == NULL, "%s", et_status_msg(s));
    if (s) goto done;
    int bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        int id = (int)jnum(c, "id");
        const char *pred = cJSON_GetObjectItemCaseSensitive(c, "prediction")->valuestring;
        const char *ref = cJSON_GetObjectItemCaseSensitive(c, "reference")->valuestring;
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(c, "label");
        int want = (int)jnum(c, "expected_class"), label_class = (int)jnum(c, "label_class");
        int got = et_emola_emotion(pred);
        if (got != want) bad++;
        CHECK(got == want, "case %d: class %d, EmoLA %d for \"%s\"", id, got, want, pred);
        if (verbose) printf("  %3d: %2d %2d %s\n", id, got, want, pred);
        check_rouge(c, pred, ref, id);
        et_emo_sample smp;
        if (cJSON_IsNumber(label))
            s = et_emo_eval_add_id(ev, pred, label->valueint, ref, &smp);
        else
            s = et_emo_eval_add(ev, pred, label->valuestring, ref, &smp);
        CHECK(s == NULL, "case %d: %s", id, et_status_msg(s));
        et_status_free(s);
        CHECK(smp.label_class == label_class && smp.pred_class == want,
              "case %d: accumulator saw label %d pred %d", id, smp.label_class, smp.pred_class);
    }
    printf("  %d emotion cases, %d mismatches\n", n, bad);

    et_emo_eval_result r;
    et_emo_eval_result_get(ev, &r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(sum, "emotion");
    CHECK(r.n_samples == n, "n %lld", (long long)r.n_samples);
    CHECK_CLOSE(r.accuracy, jnum(e, "accuracy"), 1e-9);
    CHECK_CLOSE(r.uar, jnum(e, "uar"), 1e-9);
    CHECK(r.n_rouge == (int64_t)jnum(e, "n_rouge"), "n_rouge %lld", (long long)r.n_rouge);
    CHECK_CLOSE(r.rouge_l_mean, jnum(e, "rouge_l_mean"), 1e-9);
    CHECK_CLOSE(r.s_re, jnum(e, "s_re"), 1e-9);
    CHECK_CLOSE(r.s_ge, jnum(e, "s_ge"), 1e-9);
    CHECK_CLOSE(r.rege, jnum(e, "rege"), 1e-9);
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(e, "confusion");
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(e, "unparsed");
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(e, "class_recall");
    for (int t = 0; t < 7; t++) {
        for (int p = 0; p < 7; p++) {
            int w = cJSON_GetArrayItem(cJSON_GetArrayItem(cm, t), p)->valueint;
            CHECK(r.confusion[t][p] == w, "confusion[%d][%d] %lld, python %d", t, p,
                  (long long)r.confusion[t][p], w);
        }
        CHECK(r.unparsed[t] == cJSON_GetArrayItem(un, t)->valueint, "unparsed[%d]", t);
        CHECK_CLOSE(r.class_recall[t], cJSON_GetArrayItem(rec, t)->valuedouble, 1e-9);
    }
    printf("  accuracy %.4f, UAR %.4f, ROUGE-L %.4f, REGE %.3f\n", r.accuracy, r.uar,
           r.rouge_l_mean, r.rege);
    et_emo_eval_free(ev);
done:
    cJSON_Delete(cases);
    cJSON_Delete(sum);
}

static const int faba_map[20] = {1,  2,  4,  5,  6,  7,  9,  10, 12, 14,
                                 15, 16, 17, 20, 23, 24, 25, 26, 27, 43};

static void test_au_cases(void) {
    cJSON *cases = read_jsonl(DIR "au_cases.jsonl");
    cJSON *sum = read_json(DIR "summary.json");
    CHECK(cases && sum, "fixtures missing: run tools/golden/gen_metrics.py");
    if (!cases || !sum) goto done;
    int n = cJSON_GetArraySize(cases);
    CHECK(n >= 60, "only %d AU cases", n);
    static const char *sets[] = {"FABA", "DISFA", "BP4D", "GFT", "EmotioNet"};
    et_emo_eval *ev[5];
    for (int k = 0; k < 5; k++) {
        et_au_set set;
        et_status s = et_au_set_by_name(sets[k], &set);
        CHECK(s == NULL, "%s", et_status_msg(s));
        et_emo_eval_opts opts = {.kind = ET_EVAL_AU};
        opts.n_aus = et_au_set_list(set, &opts.aus);
        s = et_emo_eval_new(&opts, &ev[k]);
        CHECK(s == NULL, "%s", et_status_msg(s));
        if (s) goto done;
    }
    int bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        int id = (int)jnum(c, "id");
        const char *pred = cJSON_GetObjectItemCaseSensitive(c, "prediction")->valuestring;
        const char *ref = cJSON_GetObjectItemCaseSensitive(c, "reference")->valuestring;
        const char *label = cJSON_GetObjectItemCaseSensitive(c, "label")->valuestring;
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "aus_found");
        int got[64];
        int ng = et_emola_aus(pred, got, 64);
        bool same = ng == cJSON_GetArraySize(want);
        for (int i = 0; same && i < ng; i++) same = got[i] == cJSON_GetArrayItem(want, i)->valueint;
        if (!same) bad++;
        CHECK(same, "case %d: %d AUs found differ from python for \"%s\"", id, ng, pred);
        // EmoLA's 20-AU FABA vectors for the prediction and the label
        int lab[64], nl = 0;
        et_status s = et_parse_au_label(label, lab, 64, &nl);
        CHECK(s == NULL, "case %d: %s", id, et_status_msg(s));
        et_status_free(s);
        const cJSON *vp = cJSON_GetObjectItemCaseSensitive(c, "faba_pred");
        const cJSON *vt = cJSON_GetObjectItemCaseSensitive(c, "faba_target");
        for (int a = 0; a < 20; a++) {
            int inp = 0, inl = 0;
            for (int i = 0; i < ng; i++) inp |= got[i] == faba_map[a];
            for (int i = 0; i < nl; i++) inl |= lab[i] == faba_map[a];
            CHECK(inp == cJSON_GetArrayItem(vp, a)->valueint, "case %d: AU%d predicted %d", id,
                  faba_map[a], inp);
            CHECK(inl == cJSON_GetArrayItem(vt, a)->valueint, "case %d: AU%d in label %d", id,
                  faba_map[a], inl);
        }
        check_rouge(c, pred, ref, id);
        for (int k = 0; k < 5; k++) {
            s = et_emo_eval_add(ev[k], pred, label, ref, NULL);
            CHECK(s == NULL, "case %d: %s", id, et_status_msg(s));
            et_status_free(s);
        }
        if (verbose) printf("  %3d: %d AUs: %s\n", id, ng, pred);
    }
    printf("  %d AU cases, %d mismatches\n", n, bad);

    const cJSON *au = cJSON_GetObjectItemCaseSensitive(sum, "au");
    for (int k = 0; k < 5; k++) {
        et_emo_eval_result r;
        et_emo_eval_result_get(ev[k], &r);
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(au, sets[k]);
        const cJSON *per = cJSON_GetObjectItemCaseSensitive(js, "per_au");
        CHECK(r.n_aus == cJSON_GetArraySize(per), "%s: %d AUs", sets[k], r.n_aus);
        int excluded = 0;
        for (int i = 0; i < r.n_aus && i < cJSON_GetArraySize(per); i++) {
            const cJSON *pa = cJSON_GetArrayItem(per, i);
            bool inc = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pa, "included"));
            CHECK(r.aus[i] == (int)jnum(pa, "au"), "%s: AU order", sets[k]);
            CHECK(r.au_included[i] == inc, "%s AU%d: included %d", sets[k], r.aus[i],
                  r.au_included[i]);
            excluded += !inc;
            if (inc) {
                CHECK_CLOSE(r.au_f1[i], jnum(pa, "f1"), 1e-9);
                CHECK_CLOSE(r.au_acc[i], jnum(pa, "acc"), 1e-9);
            }
        }
        CHECK_CLOSE(r.f1_mean, jnum(js, "f1_mean"), 1e-9);
        CHECK_CLOSE(r.au_acc_mean, jnum(js, "acc_mean"), 1e-9);
        printf("  %-9s mean F1 %.4f over %d AUs (%d left out)\n", sets[k], r.f1_mean,
               r.n_aus - excluded, excluded);
        if (k == 0) {
            CHECK(excluded >= 1, "the fixture should exercise the single-class exclusion");
            CHECK(r.n_rouge == (int64_t)jnum(au, "n_rouge"), "n_rouge %lld", (long long)r.n_rouge);
            CHECK_CLOSE(r.rouge_l_mean, jnum(au, "rouge_l_mean"), 1e-9);
            CHECK_CLOSE(r.s_re, jnum(au, "s_re"), 1e-9);
            CHECK_CLOSE(r.s_ge, jnum(au, "s_ge"), 1e-9);
            CHECK_CLOSE(r.rege, jnum(au, "rege"), 1e-9);
        }
    }
    for (int k = 0; k < 5; k++) et_emo_eval_free(ev[k]);
done:
    cJSON_Delete(cases);
    cJSON_Delete(sum);
}

int main(void) {
    verbose = getenv("GOLDEN_VERBOSE") != NULL;
    RUN(test_emotion_cases);
    RUN(test_au_cases);
    return test_summary();
}
