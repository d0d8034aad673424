// tests/fuzz/fuzz_metrics.c - libFuzzer target for the text parsers of train/eval/metrics.c.
// The input is split at NUL bytes into a prediction, a reference and a label; each goes
// through et_emola_emotion, et_emola_aus, et_rouge_l, both label parsers and an emotion and
// an AU accumulator.
// Invariants: the class is -1..6; the AU count is the same with a small and a large buffer;
// ROUGE-L scores lie in [0, 1] and are defined unless a text is empty after splitting on '.';
// accumulator numbers stay in range.
// Seeds: tests/fuzz/corpus/metrics.
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "train/eval/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    char *buf = malloc(size + 3);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *pred = buf;
    const char *ref = pred + strlen(pred) + 1;
    if (ref > buf + size) ref = buf + size + 1;
    const char *label = ref + strlen(ref) + 1;
    if (label > buf + size + 1) label = buf + size + 2;

    int c = et_emola_emotion(pred);
    if (c < -1 || c > 6) abort();
    int few[2], many[256];
    int n1 = et_emola_aus(pred, few, 2), n2 = et_emola_aus(pred, many, 256);
    if (n1 != n2 || (n2 <= 2 && n2 > 0 && few[0] != many[0])) abort();

    et_rouge_l_scores sc;
    et_status s = et_rouge_l(pred, ref, &sc);
    if (!s && sc.defined &&
        !(sc.f >= 0 && sc.f <= 1 && sc.p >= 0 && sc.p <= 1 && sc.r >= 0 && sc.r <= 1))
        abort();
    et_status_free(s);

    int id, aus[16], n_aus;
    et_status_free(et_parse_emotion_label(label, NULL, 0, &id));
    et_status_free(et_parse_au_label(label, aus, 16, &n_aus));

    et_emo_eval *ev;
    et_emo_eval_opts eo = {.kind = ET_EVAL_EMOTION};
    if (et_emo_eval_new(&eo, &ev) == NULL) {
        et_status_free(et_emo_eval_add(ev, pred, label, ref, NULL));
        et_status_free(et_emo_eval_add_id(ev, ref, 3, pred, NULL));
        et_emo_eval_result r;
        et_emo_eval_result_get(ev, &r);
        if (!(r.accuracy >= 0 && r.accuracy <= 1)) abort();
        et_emo_eval_free(ev);
    }
    et_emo_eval_opts ao = {.kind = ET_EVAL_AU};
    if (et_emo_eval_new(&ao, &ev) == NULL) {
        et_status_free(et_emo_eval_add(ev, pred, label, ref, NULL));
        et_emo_eval_result r;
        et_emo_eval_result_get(ev, &r);
        if (r.n_samples && !isnan(r.f1_mean) && !(r.f1_mean >= 0 && r.f1_mean <= 1)) abort();
        et_emo_eval_free(ev);
    }
    free(buf);
    return 0;
}
