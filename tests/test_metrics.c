// tests/test_metrics.c - unit tests of train/eval/metrics.c: F1/UAR/WAR edge cases, the AU
// single-class exclusion, empty input, ROUGE-L by hand, label parsing errors, class-name
// mapping, metrics JSON and the confusion-matrix PNG.
#include <cjson/cJSON.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../data/image.h"
#include "test_util.h"
#include "train/eval/metrics.h"
#include "train/eval/plot.h"

static char g_dir[256];

static void make_tmpdir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/et_metrics_XXXXXX");
    ET_ASSERT(mkdtemp(g_dir), "mkdtemp failed");
}

static et_emo_eval *new_eval(et_eval_kind kind, const char *const *names, int n, const int *aus,
                             int n_aus) {
    et_emo_eval_opts o = {
        .kind = kind, .class_names = names, .n_classes = n, .aus = aus, .n_aus = n_aus};
    et_emo_eval *ev = NULL;
    et_status s = et_emo_eval_new(&o, &ev);
    CHECK(s == NULL, "%s", et_status_msg(s));
    et_status_free(s);
    return ev;
}

static void add_ok(et_emo_eval *ev, const char *pred, const char *label, const char *ref) {
    et_status s = et_emo_eval_add(ev, pred, label, ref, NULL);
    CHECK(s == NULL, "adding \"%s\" / \"%s\": %s", pred, label, et_status_msg(s));
    et_status_free(s);
}

static void test_f1_binary(void) {
    CHECK(et_f1_binary(0, 0, 0) == 0.0);
    CHECK(et_f1_binary(0, 5, 3) == 0.0);  // TP == 0 -> 0 (no division)
    CHECK(et_f1_binary(4, 0, 0) == 1.0);
    CHECK_CLOSE(et_f1_binary(2, 1, 3), 2 * (2.0 / 3) * (2.0 / 5) / (2.0 / 3 + 2.0 / 5), 1e-15);
    CHECK_CLOSE(et_f1_binary(1, 1, 1), 0.5, 1e-15);
}

static void test_emotion_rule(void) {
    // the rule's corners, beyond the golden set
    CHECK(et_emola_emotion("Sad.") == ET_EMO_HAPPINESS);  // "sad" is in no list: all zero
    CHECK(et_emola_emotion("The face shows sadness.") == ET_EMO_SADNESS);
    CHECK(et_emola_emotion("Discomfort.") == ET_EMO_SADNESS);      // sadness before disgust
    CHECK(et_emola_emotion("Displeased.") == ET_EMO_ANGER);        // anger before disgust
    CHECK(et_emola_emotion("The nose. Fear.") == ET_EMO_FEAR);     // "nose" holds "no"
    CHECK(et_emola_emotion("Joy. No fear.") == ET_EMO_HAPPINESS);  // negated sentence dropped
    CHECK(et_emola_emotion("") == ET_EMOLA_NO_ANSWER);
    CHECK(et_emola_emotion("happy") == ET_EMOLA_NO_ANSWER);
    CHECK(et_emola_emotion("happy\n.") == ET_EMOLA_NO_ANSWER);  // '.' does not cross '\n'
    CHECK(et_emola_emotion("x. Anger anger fear fear.") == ET_EMO_ANGER);  // tie -> first
    // not valid UTF-8: a stray byte is one non-word character
    CHECK(et_emola_emotion("Joy\xff\xfe. Fear.") == ET_EMO_HAPPINESS);
    CHECK(et_emola_emotion("\xffjoy\xc3. Fear.") == ET_EMO_HAPPINESS);
    CHECK(et_emola_emotion("\xe2\x82 fear.") == ET_EMO_FEAR);
    // non-ASCII letters glue to a word, non-ASCII punctuation does not
    CHECK(et_emola_emotion("caf\xc3\xa9joy. Fear.") == ET_EMO_FEAR);
    CHECK(et_emola_emotion("joy\xe2\x80\x94. Fear.") == ET_EMO_HAPPINESS);
    CHECK(et_emola_emotion("S\xe2\x84\xaa"
                           "epticism.") == ET_EMO_SURPRISE);  // KELVIN SIGN
}

static void test_aus(void) {
    int out[8];
    CHECK(et_emola_aus("", out, 8) == 0);
    CHECK(et_emola_aus("no AUs here, au12, AU 4, AU", out, 8) == 0);
    int n = et_emola_aus("AU12, AU6, AU12 and AU01 and AU0 and AU12345", out, 8);
    CHECK(n == 3 && out[0] == 12 && out[1] == 6 && out[2] == 0, "n %d", n);
    // more than max: count all, write max
    n = et_emola_aus("AU1 AU2 AU4 AU5 AU6", out, 2);
    CHECK(n == 5 && out[0] == 1 && out[1] == 2, "n %d", n);
    CHECK(et_emola_aus("AU1 AU2", NULL, 0) == 2);
    // a Unicode digit continues the match (Python's \d) and spoils it
    CHECK(et_emola_aus("AU1\xd9\xa2 AU4", out, 8) == 1 && out[0] == 4);
    const int *l;
    CHECK(et_au_set_list(ET_AUS_FABA, &l) == 12 && l[0] == 1 && l[11] == 43);
    CHECK(et_au_set_list(ET_AUS_DISFA, &l) == 8 && l[4] == 9);
    CHECK(et_au_set_list(ET_AUS_BP4D, &l) == 12 && l[4] == 7);
    CHECK(et_au_set_list(ET_AUS_GFT, &l) == 10 && l[9] == 24);
    et_au_set set;
    et_status s = et_au_set_by_name("bp4d", &set);
    CHECK(s == NULL && set == ET_AUS_BP4D);
    s = et_au_set_by_name("CK+", &set);
    CHECK(et_status_code(s) == ET_ERR_INVALID && strstr(et_status_msg(s), "CK+"));
    et_status_free(s);
}

static void test_rouge_by_hand(void) {
    et_rouge_l_scores sc;
    CHECK(et_rouge_l("", "a b", &sc) == NULL && !sc.defined && sc.f == 0);
    CHECK(et_rouge_l("a b", "...", &sc) == NULL && !sc.defined);
    // one sentence, LCS "a c" of ref "a b c" (m 3) and hyp "a c d e" (n 4)
    CHECK(et_rouge_l("a c d e", "a b c", &sc) == NULL && sc.defined);
    CHECK(sc.lcs_words == 2 && sc.ref_words == 3 && sc.hyp_words == 4);
    CHECK(sc.r == 2.0 / 3 && sc.p == 0.5);
    CHECK(sc.f == 2.0 * ((0.5 * (2.0 / 3)) / (0.5 + 2.0 / 3 + 1e-8)));
    // identical: just under 1 because of the 1e-8
    CHECK(et_rouge_l("The face is calm.", "The face is calm.", &sc) == NULL);
    CHECK(sc.p == 1 && sc.r == 1 && sc.f < 1 && sc.f > 1 - 1e-8);
    // case-sensitive, punctuation other than '.' stays on the token
    CHECK(et_rouge_l("Joy, smile", "joy smile", &sc) == NULL && sc.lcs_words == 1);
    // distinct tokens: repeats count once
    CHECK(et_rouge_l("a a a a", "a", &sc) == NULL && sc.hyp_words == 1 && sc.p == 1);
    // a sentence pair over the LCS limit is an error, not a crash
    size_t words = 17000;
    char *big = malloc(words * 2 + 1);
    for (size_t i = 0; i < words; i++) big[2 * i] = 'w', big[2 * i + 1] = ' ';
    big[words * 2] = '\0';
    et_status s = et_rouge_l(big, big, &sc);
    CHECK(et_status_code(s) == ET_ERR_NOMEM && !sc.defined, "%s", et_status_msg(s));
    et_status_free(s);
    free(big);
}

static void test_emotion_labels(void) {
    int c = -1;
    et_status s;
    CHECK(et_parse_emotion_label("Happiness", NULL, 0, &c) == NULL && c == 0);
    CHECK(et_parse_emotion_label(" happy ", NULL, 0, &c) == NULL && c == 0);
    CHECK(et_parse_emotion_label("FEAR", NULL, 0, &c) == NULL && c == 6);
    CHECK(et_parse_emotion_label("angry", NULL, 0, &c) == NULL && c == 3);
    CHECK(et_parse_emotion_label("3", NULL, 0, &c) == NULL && c == 3);
    CHECK(et_parse_emotion_label("+2", NULL, 0, &c) == NULL && c == 2);
    static const char *const affectnet[] = {"neutral", "happy",   "sad",   "surprise",
                                            "fear",    "disgust", "anger", "contempt"};
    CHECK(et_parse_emotion_label("Happiness", affectnet, 8, &c) == NULL && c == 1);
    CHECK(et_parse_emotion_label("contemptuous", affectnet, 8, &c) == NULL && c == 7);
    const char *bad[] = {"", "   ", "joyous", "7", "-1", "99999999999999", "Happiness!", NULL};
    for (int i = 0; bad[i]; i++) {
        s = et_parse_emotion_label(bad[i], NULL, 0, &c);
        CHECK(s != NULL, "\"%s\" parsed", bad[i]);
        if (s && bad[i][0] && bad[i][0] != ' ')
            CHECK(strstr(et_status_msg(s), bad[i]), "message does not quote the label: %s",
                  et_status_msg(s));
        et_status_free(s);
    }
    s = et_parse_emotion_label(NULL, NULL, 0, &c);
    CHECK(et_status_code(s) == ET_ERR_FORMAT);
    et_status_free(s);
}

static void test_au_labels(void) {
    int out[8], n = -1;
    CHECK(et_parse_au_label("4, 9, 15", out, 8, &n) == NULL && n == 3 && out[2] == 15);
    CHECK(et_parse_au_label("4,9", out, 8, &n) == NULL && n == 2 && out[1] == 9);
    CHECK(et_parse_au_label(" 12 ,6 , 12", out, 8, &n) == NULL && n == 2 && out[0] == 12);
    CHECK(et_parse_au_label("", out, 8, &n) == NULL && n == 0);
    CHECK(et_parse_au_label("  ", out, 8, &n) == NULL && n == 0);
    const char *bad[] = {"AU4", "04", "4,,9", "4, x", "4,", ",4", "4 9", "12345", "-4", NULL};
    for (int i = 0; bad[i]; i++) {
        et_status s = et_parse_au_label(bad[i], out, 8, &n);
        CHECK(et_status_code(s) == ET_ERR_FORMAT, "\"%s\": %s", bad[i], et_status_msg(s));
        CHECK(s == NULL || strstr(et_status_msg(s), bad[i]), "%s", et_status_msg(s));
        et_status_free(s);
    }
    et_status s = et_parse_au_label("1, 2, 4", out, 2, &n);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
}

static void test_war_uar(void) {
    et_emo_eval *ev = new_eval(ET_EVAL_EMOTION, NULL, 0, NULL, 0);
    // class 0: 3 samples, 2 right; class 1: 1 sample, right; class 3: 2 samples, 0 right
    add_ok(ev, "The face shows joy.", "Happiness", NULL);
    add_ok(ev, "Joy.", "0", NULL);
    add_ok(ev, "The face shows fear.", "happy", NULL);
    add_ok(ev, "Sadness.", "sad", NULL);
    add_ok(ev, "Calm.", "Anger", NULL);
    add_ok(ev, "no sentence end", "Anger", NULL);  // EmoLA raises: unparsed, wrong
    et_emo_eval_result r;
    et_emo_eval_result_get(ev, &r);
    CHECK(r.n_samples == 6);
    CHECK_CLOSE(r.accuracy, 3.0 / 6, 1e-15);
    CHECK_CLOSE(r.class_recall[0], 2.0 / 3, 1e-15);
    CHECK(r.class_recall[1] == 1.0 && r.class_recall[3] == 0.0);
    CHECK(isnan(r.class_recall[2]) && isnan(r.class_recall[6]));
    CHECK_CLOSE(r.uar, (2.0 / 3 + 1.0 + 0.0) / 3, 1e-15);  // classes with a target only
    CHECK(r.confusion[0][0] == 2 && r.confusion[0][6] == 1 && r.confusion[3][4] == 1);
    CHECK(r.unparsed[3] == 1);
    CHECK(r.n_rouge == 0 && isnan(r.rouge_l_mean) && isnan(r.rege));
    CHECK_CLOSE(r.s_re, 50.0, 1e-12);
    // a bad label is an error and counts nothing
    et_status s = et_emo_eval_add(ev, "Joy.", "Joyful", NULL, NULL);
    CHECK(et_status_code(s) == ET_ERR_FORMAT);
    et_status_free(s);
    s = et_emo_eval_add_id(ev, "Joy.", 7, NULL, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
    et_emo_eval_result_get(ev, &r);
    CHECK(r.n_samples == 6);
    et_emo_eval_free(ev);

    // empty accumulator: no numbers, no crash
    ev = new_eval(ET_EVAL_EMOTION, NULL, 0, NULL, 0);
    et_emo_eval_result_get(ev, &r);
    CHECK(r.n_samples == 0 && isnan(r.accuracy) && isnan(r.uar) && isnan(r.rege));
    et_emo_eval_free(ev);
}

static void test_class_mapping(void) {
    // RAF-DB order: EmoLA's answer is mapped by name
    static const char *const raf[] = {"Surprise", "Fear",  "Disgust", "Happiness",
                                      "Sadness",  "Anger", "Neutral"};
    et_emo_eval *ev = new_eval(ET_EVAL_EMOTION, raf, 7, NULL, 0);
    et_emo_sample smp;
    et_status s = et_emo_eval_add(ev, "The face shows surprise.", "surprised", "x", &smp);
    CHECK(s == NULL && smp.pred_class == 0 && smp.label_class == 0);
    s = et_emo_eval_add_id(ev, "Joy.", 3, "Joy.", &smp);
    CHECK(s == NULL && smp.pred_class == 3 && smp.rouge.defined);
    et_emo_eval_free(ev);
    // classes without some of EmoLA's names: that answer has no class
    static const char *const two[] = {"positive", "Neutral"};
    ev = new_eval(ET_EVAL_EMOTION, two, 2, NULL, 0);
    s = et_emo_eval_add(ev, "Joy.", "positive", NULL, &smp);
    CHECK(s == NULL && smp.pred_class == -1);
    s = et_emo_eval_add(ev, "Calm.", "neutral", NULL, &smp);
    CHECK(s == NULL && smp.pred_class == 1);
    et_emo_eval_free(ev);
    // category answers (EMO-LLaMA style)
    et_emo_eval_opts o = {.kind = ET_EVAL_EMOTION, .parse = ET_EMO_PARSE_NAME};
    CHECK(et_emo_eval_new(&o, &ev) == NULL);
    const char *answers[] = {"surprise", "Happy.", " fear!\n", "3", "The face is happy.", ""};
    const int want[] = {2, 0, 6, -1, -1, -1};
    for (int i = 0; i < 6; i++) {
        s = et_emo_eval_add(ev, answers[i], "Neutral", NULL, &smp);
        CHECK(s == NULL && smp.pred_class == want[i], "\"%s\" -> %d", answers[i], smp.pred_class);
    }
    et_emo_eval_free(ev);
}

static void test_options(void) {
    et_emo_eval *ev = NULL;
    static const char *names17[17] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                                      "j", "k", "l", "m", "n", "o", "p", "q"};
    et_emo_eval_opts o = {.kind = ET_EVAL_EMOTION, .class_names = names17, .n_classes = 17};
    et_status s = et_emo_eval_new(&o, &ev);
    CHECK(et_status_code(s) == ET_ERR_INVALID && ev == NULL);
    et_status_free(s);
    static const char *const longname[] = {"a class name that is far too long to keep"};
    o.class_names = longname, o.n_classes = 1;
    s = et_emo_eval_new(&o, &ev);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
    o = (et_emo_eval_opts){.kind = (et_eval_kind)9};
    s = et_emo_eval_new(&o, &ev);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
    int bad_au[] = {1, -2};
    o = (et_emo_eval_opts){.kind = ET_EVAL_AU, .aus = bad_au, .n_aus = 2};
    s = et_emo_eval_new(&o, &ev);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
}

static void test_au_f1_exclusion(void) {
    int aus[] = {1, 2, 4, 12};
    et_emo_eval *ev = new_eval(ET_EVAL_AU, NULL, 0, aus, 4);
    // AU1: never anywhere -> out; AU2: in every label and prediction -> out (1x1 matrix);
    // AU4: predicted, never in a label -> F1 0, in; AU12: tp 1, fp 1, fn 1 -> F1 0.5
    add_ok(ev, "AU2 AU4 AU12", "2, 12", "ref");
    add_ok(ev, "AU2 AU12", "2", "ref");
    add_ok(ev, "AU2", "2, 12", "");
    et_emo_eval_result r;
    et_emo_eval_result_get(ev, &r);
    CHECK(!r.au_included[0] && !r.au_included[1] && r.au_included[2] && r.au_included[3]);
    CHECK(isnan(r.au_f1[0]) && isnan(r.au_f1[1]));
    CHECK(r.au_f1[2] == 0.0 && r.au_f1[3] == 0.5);
    CHECK(r.au_tp[3] == 1 && r.au_fp[3] == 1 && r.au_fn[3] == 1 && r.au_tn[3] == 0);
    CHECK_CLOSE(r.au_acc[2], 2.0 / 3, 1e-15);
    CHECK_CLOSE(r.f1_mean, 0.25, 1e-15);
    CHECK_CLOSE(r.s_re, 25.0, 1e-12);
    CHECK(r.n_rouge == 2, "the empty reference has no ROUGE");
    CHECK(r.rouge_l_mean == 0.0 && r.rege == 25.0);
    // a bad AU label is an error
    et_status s = et_emo_eval_add(ev, "AU4", "AU4", NULL, NULL);
    CHECK(et_status_code(s) == ET_ERR_FORMAT);
    et_status_free(s);
    s = et_emo_eval_add_id(ev, "AU4", 1, NULL, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
    et_emo_eval_free(ev);

    // every AU left out: mean F1 NaN (numpy's mean of nothing)
    ev = new_eval(ET_EVAL_AU, NULL, 0, NULL, 0);
    add_ok(ev, "Nothing.", "", NULL);
    et_emo_eval_result_get(ev, &r);
    CHECK(r.n_aus == 12 && isnan(r.f1_mean) && isnan(r.s_re));
    et_emo_eval_free(ev);
}

static cJSON *load_json(const char *path) {
    char *buf;
    et_status s = et_read_file(path, 1 << 20, &buf, NULL);
    CHECK(s == NULL, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return NULL;
    }
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static void test_json(void) {
    char path[512], tmp[520];
    snprintf(path, sizeof path, "%s/emotion.json", g_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    et_emo_eval *ev = new_eval(ET_EVAL_EMOTION, NULL, 0, NULL, 0);
    add_ok(ev, "The face shows joy.", "Happiness", "The face shows joy and happiness.");
    add_ok(ev, "The face shows fear.", "Sadness", "");
    et_status s = et_emo_eval_write_json(ev, path);
    CHECK(s == NULL, "%s", et_status_msg(s));
    CHECK(access(tmp, F_OK) != 0, "the temporary file is left behind");
    cJSON *j = load_json(path);
    CHECK(j != NULL);
    if (j) {
        CHECK(strcmp(cJSON_GetObjectItem(j, "kind")->valuestring, "emotion") == 0);
        CHECK(cJSON_GetObjectItem(j, "accuracy")->valuedouble == 0.5);
        CHECK(cJSON_GetObjectItem(j, "war")->valuedouble == 0.5);
        CHECK(cJSON_GetObjectItem(j, "uar")->valuedouble == 0.5);
        cJSON *rec = cJSON_GetObjectItem(j, "class_recall");
        CHECK(cJSON_GetArraySize(rec) == 7 && cJSON_IsNull(cJSON_GetArrayItem(rec, 2)));
        cJSON *cm = cJSON_GetObjectItem(j, "confusion");
        CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(cm, 1), 6)->valueint == 1);
        CHECK(strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "classes"), 4)->valuestring,
                     "Neutral") == 0);
        CHECK(cJSON_GetObjectItem(j, "n_rouge")->valueint == 1);
        et_rouge_l_scores sc;
        et_rouge_l("The face shows joy.", "The face shows joy and happiness.", &sc);
        CHECK_CLOSE(cJSON_GetObjectItem(j, "rouge_l")->valuedouble, sc.f, 1e-15);
        CHECK_CLOSE(cJSON_GetObjectItem(j, "rege")->valuedouble, 50 + 100 * sc.f, 1e-12);
        cJSON_Delete(j);
    }
    et_emo_eval_free(ev);

    // AU with NaN numbers -> null; rewriting replaces the file
    snprintf(path, sizeof path, "%s/au.json", g_dir);
    ev = new_eval(ET_EVAL_AU, NULL, 0, NULL, 0);
    CHECK(et_emo_eval_write_json(ev, path) == NULL);
    add_ok(ev, "AU12.", "12", NULL);
    add_ok(ev, "AU4.", "", NULL);
    s = et_emo_eval_write_json(ev, path);
    CHECK(s == NULL, "%s", et_status_msg(s));
    j = load_json(path);
    if (j) {
        CHECK(cJSON_GetObjectItem(j, "n_samples")->valueint == 2);
        cJSON *per = cJSON_GetObjectItem(j, "per_au");
        CHECK(cJSON_GetArraySize(per) == 12);
        cJSON *a12 = cJSON_GetArrayItem(per, 6);
        CHECK(cJSON_GetObjectItem(a12, "au")->valueint == 12 &&
              cJSON_IsTrue(cJSON_GetObjectItem(a12, "included")) &&
              cJSON_GetObjectItem(a12, "f1")->valuedouble == 1.0);
        cJSON *a1 = cJSON_GetArrayItem(per, 0);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItem(a1, "included")) &&
              cJSON_IsNull(cJSON_GetObjectItem(a1, "f1")));
        CHECK(cJSON_GetObjectItem(j, "f1_mean")->valuedouble == 0.5);  // AU4 F1 0, AU12 1
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "rouge_l")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "rege")));
        cJSON_Delete(j);
    }
    // an unwritable path is an ET_ERR_IO naming it
    s = et_emo_eval_write_json(ev, "/nonexistent-dir/metrics.json");
    CHECK(et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "/nonexistent-dir"));
    et_status_free(s);
    et_emo_eval_free(ev);
}

// The pixel at (x, y).
static const uint8_t *px(const et_image *im, int x, int y) {
    return im->data + ((size_t)y * im->width + x) * 3;
}

// Pixels of the band [y0, y0 + h) equal those of text drawn alone at (x, y0) on white.
static bool band_shows(const et_image *im, int x, int y0, int h, const char *text, int scale) {
    et_image ref = et_plot_canvas(im->width, h);
    const uint8_t black[3] = {0, 0, 0};
    et_plot_text(&ref, x, 0, text, scale, black);
    bool same = true;
    for (int y = 0; y < h && same; y++)
        same = !memcmp(px(im, 0, y0 + y), px(&ref, 0, y), (size_t)im->width * 3);
    free(ref.data);
    return same;
}

static void test_confusion_png(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/confusion.png", g_dir);
    et_emo_eval *ev = new_eval(ET_EVAL_EMOTION, NULL, 0, NULL, 0);
    for (int i = 0; i < 9; i++) add_ok(ev, "The face shows joy.", "Happiness", NULL);
    add_ok(ev, "The face shows fear.", "Happiness", NULL);
    add_ok(ev, "The face shows fear.", "Fear", NULL);
    et_status s = et_emo_eval_write_confusion_png(ev, path, 0, "test.json");
    CHECK(s == NULL, "%s", et_status_msg(s));
    et_image im = {0};
    s = et_image_decode_file(path, NULL, &im);
    CHECK(s == NULL, "%s", et_status_msg(s));
    if (!s) {
        // the title: centred, scale 2, 12 px from the top, with the eval name and accuracy
        const char *title = "confusion matrix: test.json, accuracy 90.91% (11 samples)";
        int tw = et_plot_text_width(title, 2);
        CHECK(im.width >= tw + 24, "width %d fits the title (%d)", im.width, tw);
        CHECK(band_shows(&im, (im.width - tw) / 2, 12, 16, title, 2), "title band");
        // the grid's top-left corner: the first cell-border pixel (200, 200, 200)
        int gx = -1, gy = -1;
        for (int y = 0; y < im.height && gy < 0; y++)
            for (int x = 0; x < im.width; x++) {
                const uint8_t *p = px(&im, x, y);
                if (p[0] == 200 && p[1] == 200 && p[2] == 200) {
                    gx = x, gy = y;
                    break;
                }
            }
        const int cell = 64;
        CHECK(gx > 100 && gy > 28 && gx + 7 * cell < im.width && gy + 7 * cell < im.height,
              "grid at %d,%d in %dx%d", gx, gy, im.width, im.height);
        if (gx > 0 && gy > 0 && gx + 7 * cell < im.width && gy + 7 * cell < im.height) {
            // cell corners (no text there): shade by row-normalised value; rows are true
            // classes (Happiness = class 0), columns predictions (Fear = class 6)
            const uint8_t *c00 = px(&im, gx + 3, gy + 3);
            const uint8_t *c06 = px(&im, gx + 6 * cell + 3, gy + 3);
            const uint8_t *c11 = px(&im, gx + cell + 3, gy + cell + 3);
            const uint8_t *c66 = px(&im, gx + 6 * cell + 3, gy + 6 * cell + 3);
            CHECK(c00[0] < c06[0] && c06[0] < 255, "0.9 darker than 0.1: %d %d", c00[0], c06[0]);
            CHECK(c11[0] == 255 && c11[1] == 255 && c11[2] == 255, "an empty row is white");
            CHECK(c66[0] == 8 && c66[1] == 48 && c66[2] == 107, "1.0 is the full colour");
            // no "no class" column: every answer named a class
            const uint8_t *past = px(&im, gx + 7 * cell + 1, gy + 3);
            CHECK(past[0] == 255 && past[1] == 255 && past[2] == 255, "7 columns only");
            // the count "9" in white on the dark cell (0, 0), "90%" under it
            int white = 0;
            for (int y = gy + 16; y < gy + 48; y++)
                for (int x = gx + 16; x < gx + 48; x++) {
                    const uint8_t *p = px(&im, x, y);
                    white += p[0] == 255 && p[1] == 255 && p[2] == 255;
                }
            CHECK(white > 10, "no digits drawn in cell (0,0)");
            // "true class" turned on the left, "predicted class" centred under the column
            // names: ink left of the row names and in the last text band
            int ink_left = 0, ink_bottom = 0;
            for (int y = gy; y < gy + 7 * cell; y++)
                for (int x = 0; x < 12 + 22; x++) ink_left += px(&im, x, y)[0] == 0;
            CHECK(ink_left > 40, "y axis label: %d ink pixels", ink_left);
            const int lab_w = et_plot_text_width("predicted class", 2);
            for (int y = im.height - 40; y < im.height; y++)
                for (int x = gx; x < gx + 7 * cell; x++) ink_bottom += px(&im, x, y)[0] == 0;
            CHECK(ink_bottom > 100, "x axis label: %d ink pixels", ink_bottom);
            // the x label is exactly "predicted class" at scale 2
            int ly = -1;
            for (int y = gy + 7 * cell; y < im.height && ly < 0; y++)
                for (int x = gx + (7 * cell - lab_w) / 2; x < gx + (7 * cell + lab_w) / 2; x++)
                    if (px(&im, x, y)[0] == 0 && y > im.height - 40) {
                        ly = y;
                        break;
                    }
            CHECK(ly > 0 && band_shows(&im, gx + (7 * cell - lab_w) / 2, ly - 0, 14,
                                       "predicted class", 2),
                  "x label band at %d", ly);
        }
        free(im.data);
    }
    s = et_emo_eval_write_confusion_png(ev, path, 8, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
    et_emo_eval_free(ev);
    // answers that name no class get their own column
    ev = new_eval(ET_EVAL_EMOTION, NULL, 0, NULL, 0);
    add_ok(ev, "The face shows joy.", "Happiness", NULL);
    add_ok(ev, "neutral face", "Neutral", NULL);  // EmoLA's rules find no class in it
    s = et_emo_eval_write_confusion_png(ev, path, 0, NULL);
    CHECK(s == NULL, "%s", et_status_msg(s));
    s = s ? s : et_image_decode_file(path, NULL, &im);
    CHECK(s == NULL, "%s", et_status_msg(s));
    if (!s) {
        const char *title = "confusion matrix, accuracy 50.00% (2 samples)";
        int tw = et_plot_text_width(title, 2);
        CHECK(band_shows(&im, (im.width - tw) / 2, 12, 16, title, 2), "title without a name");
        int right = -1;  // the last cell-border column on the first grid row
        for (int y = 0; y < im.height && right < 0; y++)
            for (int x = im.width - 1; x >= 0; x--) {
                const uint8_t *p = px(&im, x, y);
                if (p[0] == 200 && p[1] == 200 && p[2] == 200) {
                    right = x;
                    break;
                }
            }
        CHECK(right == im.width - 13, "an 8th column reaches the right margin: %d of %d", right,
              im.width);
        free(im.data);
    }
    et_status_free(s);
    et_emo_eval_free(ev);
    ev = new_eval(ET_EVAL_AU, NULL, 0, NULL, 0);
    s = et_emo_eval_write_confusion_png(ev, path, 0, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID);
    et_status_free(s);
    et_emo_eval_free(ev);
}

int main(void) {
    make_tmpdir();
    RUN(test_f1_binary);
    RUN(test_emotion_rule);
    RUN(test_aus);
    RUN(test_rouge_by_hand);
    RUN(test_emotion_labels);
    RUN(test_au_labels);
    RUN(test_war_uar);
    RUN(test_class_mapping);
    RUN(test_options);
    RUN(test_au_f1_exclusion);
    RUN(test_json);
    RUN(test_confusion_png);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary();
}
