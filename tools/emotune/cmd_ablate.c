// tools/emotune/cmd_ablate.c - `emotune ablate`: a matrix of config diffs -> one training +
// evaluation run each -> one markdown table.
//
// The matrix file (configs/ablation/*.json):
//   {"name": "...", "overrides": ["train.max_steps=200", ...],          (optional, every run)
//    "seeds": [1, 2, 3],                                               (optional)
//    "runs": [{"name": "visual + landmark", "overrides": []},
//             {"name": "visual only", "overrides": ["model.face_prior=none"]}]}
// Run k gets: the base config (-c), the command line's key=value overrides, the matrix's
// overrides, its own, then train.output_dir=OUT/<slug of its name> (eval.output_dir: unset,
// so OUT/<slug>/eval). With seeds (the matrix's "seeds" or --seeds 1,2,3, which wins), every
// run is repeated once per seed with train.seed=S last, in OUT/<slug>/seed-S, and the table
// gives each figure as mean ± sample standard deviation over the seeds (results.json keeps
// every seed's row). Each finished run leaves OUT/<slug>/ablation_row.json; a second
// `ablate` over the same OUT reuses finished rows and resumes unfinished runs from their
// newest checkpoint, so an interrupted ablation continues where it stopped. The table goes to
// OUT/results.md (and stdout), the rows to OUT/results.json.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/fileio.h"
#include "core/json_util.h"
#include "train/eval/evaluator.h"
#include "train/runconfig.h"
#include "train/trainer.h"

#define MAX_RUNS 64
#define MAX_OVER 64
#define MAX_SEEDS 16

typedef struct {
    char name[128];
    char slug[128];
    int n_over;
    char *over[MAX_OVER];
} ablation_run;

typedef struct {
    char name[256];
    int n_over;
    char *over[MAX_OVER];
    int n_runs;
    ablation_run runs[MAX_RUNS];
    int n_seeds;  // 0: one run each, train.seed as configured
    int64_t seeds[MAX_SEEDS];
} ablation_matrix;

static void matrix_free(ablation_matrix *m) {
    for (int i = 0; i < m->n_over; i++) free(m->over[i]);
    for (int r = 0; r < m->n_runs; r++)
        for (int i = 0; i < m->runs[r].n_over; i++) free(m->runs[r].over[i]);
}

// An array of "section.key=value" strings into over[] (strdup'd).
static et_status read_overrides(const char *path, const char *where, const cJSON *arr, int *n,
                                char **over) {
    *n = 0;
    if (!arr) return NULL;
    if (!cJSON_IsArray(arr))
        return et_err(ET_ERR_FORMAT, "%s: %s.overrides must be an array of \"key=value\" strings",
                      path, where);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it) || !strchr(it->valuestring, '='))
            return et_err(ET_ERR_FORMAT, "%s: %s.overrides[%d] is not a \"key=value\" string", path,
                          where, *n);
        if (*n >= MAX_OVER)
            return et_err(ET_ERR_FORMAT, "%s: %s has more than %d overrides", path, where,
                          MAX_OVER);
        over[(*n)++] = strdup(it->valuestring);
    }
    return NULL;
}

static void slugify(const char *name, char *out, size_t cap) {
    size_t n = 0;
    bool dash = false;
    for (const char *p = name; *p && n + 1 < cap; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
        if (ok) {
            if (dash && n > 0) out[n++] = '-';
            if (n + 1 < cap) out[n++] = c;
            dash = false;
        } else {
            dash = true;
        }
    }
    out[n] = 0;
}

static et_status matrix_parse(const char *path, const char *text, ablation_matrix *m) {
    memset(m, 0, sizeof *m);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, true);
    if (!root) {
        int line = 1, col = 1;
        for (const char *p = text; end && p < end; p++)
            line += *p == '\n', col = *p == '\n' ? 1 : col + 1;
        if (end && et_json_too_deep(text, (size_t)(end - text) + 1))
            return et_err(ET_ERR_FORMAT,
                          "%s: JSON nesting deeper than %d levels at line %d, column %d", path,
                          ET_JSON_MAX_DEPTH, line, col);
        return et_err(ET_ERR_FORMAT, "%s: JSON syntax error at line %d, column %d", path, line,
                      col);
    }
    et_status st = et_json_check_unique(root, path);  // Python would take the last, cJSON the first
    if (st) goto done;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
    const cJSON *it;
    if (!cJSON_IsObject(root)) {
        st = et_err(ET_ERR_FORMAT, "%s: the matrix must be a JSON object", path);
        goto done;
    }
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "name") && strcmp(it->string, "overrides") &&
            strcmp(it->string, "runs") && strcmp(it->string, "seeds")) {
            st = et_err(ET_ERR_FORMAT,
                        "%s: unknown key \"%s\" (expected name, overrides, seeds, runs)", path,
                        it->string);
            goto done;
        }
    }
    const cJSON *seeds = cJSON_GetObjectItemCaseSensitive(root, "seeds");
    if (seeds) {
        bool ok = cJSON_IsArray(seeds) && cJSON_GetArraySize(seeds) > 0 &&
                  cJSON_GetArraySize(seeds) <= MAX_SEEDS;
        const cJSON *list = ok ? seeds : NULL;
        cJSON_ArrayForEach(it, list) {
            double v = it->valuedouble;
            ok = ok && cJSON_IsNumber(it) && v >= 0 && v <= 9007199254740991.0 && v == (int64_t)v;
            for (int k = 0; ok && k < m->n_seeds; k++) ok = m->seeds[k] != (int64_t)v;
            if (ok) m->seeds[m->n_seeds++] = (int64_t)v;
        }
        if (!ok) {
            st = et_err(ET_ERR_FORMAT,
                        "%s: \"seeds\" must be an array of 1 to %d distinct non-negative integers",
                        path, MAX_SEEDS);
            goto done;
        }
    }
    if (name && !cJSON_IsString(name)) {
        st = et_err(ET_ERR_FORMAT, "%s: \"name\" must be a string", path);
        goto done;
    }
    snprintf(m->name, sizeof m->name, "%s", name ? name->valuestring : path);
    st = read_overrides(path, "matrix", cJSON_GetObjectItemCaseSensitive(root, "overrides"),
                        &m->n_over, m->over);
    if (st) goto done;
    if (!cJSON_IsArray(runs) || cJSON_GetArraySize(runs) == 0) {
        st = et_err(ET_ERR_FORMAT, "%s: \"runs\" must be a non-empty array", path);
        goto done;
    }
    if (cJSON_GetArraySize(runs) > MAX_RUNS) {
        st = et_err(ET_ERR_FORMAT, "%s: more than %d runs", path, MAX_RUNS);
        goto done;
    }
    cJSON_ArrayForEach(it, runs) {
        ablation_run *r = &m->runs[m->n_runs];
        char where[32];
        snprintf(where, sizeof where, "runs[%d]", m->n_runs);
        const cJSON *rn = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (!cJSON_IsObject(it) || !cJSON_IsString(rn) || !rn->valuestring[0] ||
            strlen(rn->valuestring) >= sizeof r->name) {
            st = et_err(ET_ERR_FORMAT,
                        "%s: %s needs a \"name\" (a non-empty string under %zu bytes)", path, where,
                        sizeof r->name);
            goto done;
        }
        snprintf(r->name, sizeof r->name, "%s", rn->valuestring);
        slugify(r->name, r->slug, sizeof r->slug);
        st = read_overrides(path, where, cJSON_GetObjectItemCaseSensitive(it, "overrides"),
                            &r->n_over, r->over);
        m->n_runs++;
        if (st) goto done;
        if (!r->slug[0]) {
            st = et_err(ET_ERR_FORMAT, "%s: %s name \"%s\" has no letter or digit", path, where,
                        r->name);
            goto done;
        }
        for (int k = 0; k < m->n_runs - 1; k++)
            if (!strcmp(m->runs[k].slug, r->slug)) {
                st =
                    et_err(ET_ERR_FORMAT, "%s: runs \"%s\" and \"%s\" map to the same directory %s",
                           path, m->runs[k].name, r->name, r->slug);
                goto done;
            }
    }
done:
    cJSON_Delete(root);
    if (st) matrix_free(m);
    return st;
}

// One table row: what the training and the evaluation reported.
typedef struct {
    double steps, final_loss, train_seconds;
    double samples, accuracy, uar, f1_mean, s_ge, rege;
    bool emotion, have_rouge;
} ablation_row;

static cJSON *row_to_json(const ablation_run *r, const ablation_row *w, const int64_t *seed) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", r->name);
    if (seed) cJSON_AddNumberToObject(o, "seed", (double)*seed);
    cJSON *ov = cJSON_AddArrayToObject(o, "overrides");
    for (int i = 0; i < r->n_over; i++) cJSON_AddItemToArray(ov, cJSON_CreateString(r->over[i]));
    cJSON_AddStringToObject(o, "kind", w->emotion ? "emotion" : "au");
    cJSON_AddNumberToObject(o, "steps", w->steps);
    cJSON_AddNumberToObject(o, "final_loss", w->final_loss);
    cJSON_AddNumberToObject(o, "train_seconds", w->train_seconds);
    cJSON_AddNumberToObject(o, "samples", w->samples);
    if (w->emotion) {
        cJSON_AddNumberToObject(o, "accuracy", w->accuracy);
        cJSON_AddNumberToObject(o, "uar", w->uar);
    } else {
        cJSON_AddNumberToObject(o, "au_f1", w->f1_mean);
    }
    if (w->have_rouge) {
        cJSON_AddNumberToObject(o, "s_ge", w->s_ge);
        cJSON_AddNumberToObject(o, "rege", w->rege);
    }
    return o;
}

static double num(const cJSON *o, const char *k, bool *have) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (have) *have = cJSON_IsNumber(v);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

// A finished run's row (written after its evaluation); false when absent or unreadable.
static bool row_load(const char *path, ablation_row *w) {
    size_t n = 0;
    char *text = NULL;
    et_status st = et_read_file(path, ET_CONFIG_MAX_BYTES, &text, &n);
    if (st) {
        et_status_free(st);
        return false;
    }
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o) return false;
    memset(w, 0, sizeof *w);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    w->emotion = cJSON_IsString(kind) && !strcmp(kind->valuestring, "emotion");
    w->steps = num(o, "steps", NULL), w->final_loss = num(o, "final_loss", NULL);
    w->train_seconds = num(o, "train_seconds", NULL), w->samples = num(o, "samples", NULL);
    w->accuracy = num(o, "accuracy", NULL), w->uar = num(o, "uar", NULL);
    w->f1_mean = num(o, "au_f1", NULL);
    w->s_ge = num(o, "s_ge", &w->have_rouge), w->rege = num(o, "rege", NULL);
    cJSON_Delete(o);
    return true;
}

// Run r's overrides in order of precedence: command line, matrix, run. Returns the count.
static int run_overrides(const et_cli_args *a, const ablation_matrix *m, const ablation_run *r,
                         const char **over) {
    int n = 0;
    for (int i = 0; i < a->n_over; i++) over[n++] = a->over[i];
    for (int i = 0; i < m->n_over; i++) over[n++] = m->over[i];
    for (int i = 0; i < r->n_over; i++) over[n++] = r->over[i];
    return n;
}

// seed: NULL = train.seed as configured, in OUT/<slug>; else OUT/<slug>/seed-S.
static et_status run_one(const et_cli_args *a, const ablation_matrix *m, const ablation_run *r,
                         const int64_t *seed, const char *out, ablation_row *w) {
    char dir[4096], outdir_kv[4200], seed_kv[64], path[4300], label[200];
    if (seed) {
        snprintf(dir, sizeof dir, "%s/%s/seed-%lld", out, r->slug, (long long)*seed);
        snprintf(label, sizeof label, "%s (seed %lld)", r->name, (long long)*seed);
    } else {
        snprintf(dir, sizeof dir, "%s/%s", out, r->slug);
        snprintf(label, sizeof label, "%s", r->name);
    }
    snprintf(path, sizeof path, "%s/ablation_row.json", dir);
    if (row_load(path, w)) {
        printf("ablate: %s: finished earlier (%s), reused\n", label, path);
        return NULL;
    }
    const char *over[ET_CLI_MAX_OVERRIDES + 2 * MAX_OVER + 2];
    int n = run_overrides(a, m, r, over);
    if (seed) {
        snprintf(seed_kv, sizeof seed_kv, "train.seed=%lld", (long long)*seed);
        over[n++] = seed_kv;
    }
    snprintf(outdir_kv, sizeof outdir_kv, "train.output_dir=%s", dir);
    over[n++] = outdir_kv;
    et_run_config c;
    ET_TRY(et_run_config_load(a->config, n, over, &c));
    printf("ablate: %s -> %s\n", label, dir);
    fflush(stdout);
    et_train_result tr;
    et_eval_summary es;
    et_status st = et_train_run(&c, true, &tr);
    if (!st && tr.interrupted)
        st = et_err(ET_ERR_IO,
                    "ablation interrupted during \"%s\"; run the same command to continue", label);
    if (!st) st = et_eval_run(&c, NULL, &es);
    et_run_config_free(&c);
    if (st) return et_status_wrap(st, "ablation run \"%s\"", label);
    const et_emo_eval_result *e = &es.result;
    memset(w, 0, sizeof *w);
    w->steps = (double)tr.steps, w->final_loss = tr.last_loss, w->train_seconds = tr.seconds;
    w->samples = (double)e->n_samples, w->emotion = e->kind == ET_EVAL_EMOTION;
    w->accuracy = e->accuracy, w->uar = e->uar, w->f1_mean = e->f1_mean;
    w->have_rouge = e->n_rouge > 0, w->s_ge = e->s_ge, w->rege = e->rege;
    cJSON *o = row_to_json(r, w, seed);
    char *js = cJSON_Print(o);
    cJSON_Delete(o);
    st = et_write_file_atomic(path, js, strlen(js));
    free(js);
    return st;
}

// One figure over a run's seeds: "m" alone, or "m ± sd" (sample standard deviation).
static void fig(FILE *f, const ablation_row *rows, int n, size_t off, double scale, int prec) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += scale * *(const double *)((const char *)&rows[i] + off);
    const double mean = sum / n;
    for (int i = 0; i < n; i++) {
        double d = scale * *(const double *)((const char *)&rows[i] + off) - mean;
        sq += d * d;
    }
    fprintf(f, "%.*f", prec, mean);
    if (n > 1) fprintf(f, " ± %.*f", prec, sqrt(sq / (n - 1)));
}

// rows[r * ns + k]: run r, seed k (ns = max(1, n_seeds)).
static void table_write(FILE *f, const ablation_matrix *m, const ablation_row *rows) {
    const int ns = m->n_seeds ? m->n_seeds : 1;
    bool rouge = false, emotion = rows[0].emotion;
    for (int r = 0; r < m->n_runs * ns; r++) rouge |= rows[r].have_rouge;
    fprintf(f, "## %s\n\n| run | overrides | steps | final loss | %s | ROUGE-L | REGE |\n", m->name,
            emotion ? "accuracy | UAR" : "AU F1");
    fprintf(f, "|---|---|---|---|%s---|---|\n", emotion ? "---|---|" : "---|");
    for (int r = 0; r < m->n_runs; r++) {
        const ablation_run *run = &m->runs[r];
        const ablation_row *w = &rows[r * ns];
        fprintf(f, "| %s | ", run->name);
        if (!run->n_over) fprintf(f, "(base)");
        for (int i = 0; i < run->n_over; i++) fprintf(f, "%s`%s`", i ? " " : "", run->over[i]);
        fprintf(f, " | %.0f | ", w->steps);
        fig(f, w, ns, offsetof(ablation_row, final_loss), 1, 4);
        fprintf(f, " | ");
        if (emotion) {
            fig(f, w, ns, offsetof(ablation_row, accuracy), 100, 2);
            fprintf(f, " | ");
            fig(f, w, ns, offsetof(ablation_row, uar), 100, 2);
        } else {
            fig(f, w, ns, offsetof(ablation_row, f1_mean), 100, 2);
        }
        fprintf(f, " | ");
        bool have = true;
        for (int k = 0; k < ns; k++) have &= w[k].have_rouge;
        if (rouge && have) {
            fig(f, w, ns, offsetof(ablation_row, s_ge), 1, 2);
            fprintf(f, " | ");
            fig(f, w, ns, offsetof(ablation_row, rege), 1, 2);
            fprintf(f, " |\n");
        } else {
            fprintf(f, "- | - |\n");
        }
    }
    fprintf(f, "\n%d runs; samples per evaluation: %.0f.", m->n_runs, rows[0].samples);
    if (m->n_seeds) {
        fprintf(f,
                " Each figure is the mean ± sample standard deviation over %d seeds (train.seed =",
                m->n_seeds);
        for (int k = 0; k < m->n_seeds; k++)
            fprintf(f, "%s %lld", k ? "," : "", (long long)m->seeds[k]);
        fprintf(f, ").");
    }
    if (m->n_over) {
        fprintf(f, " Every run:");
        for (int i = 0; i < m->n_over; i++) fprintf(f, " `%s`", m->over[i]);
        fprintf(f, ".");
    }
    fprintf(f, "\n");
}

static et_status write_results(const char *out, const ablation_matrix *m,
                               const ablation_row *rows) {
    char path[4200];
    snprintf(path, sizeof path, "%s/results.md", out);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return et_err(ET_ERR_IO, "%s: out of memory", path);
    table_write(f, m, rows);
    fclose(f);
    et_status st = et_write_file_atomic(path, buf, len);
    if (!st) fputs(buf, stdout);
    free(buf);
    if (st) return st;
    const int ns = m->n_seeds ? m->n_seeds : 1;
    cJSON *arr = cJSON_CreateArray();
    for (int r = 0; r < m->n_runs; r++)
        for (int k = 0; k < ns; k++)
            cJSON_AddItemToArray(
                arr, row_to_json(&m->runs[r], &rows[r * ns + k], m->n_seeds ? &m->seeds[k] : NULL));
    char *js = cJSON_Print(arr);
    cJSON_Delete(arr);
    snprintf(path, sizeof path, "%s/results.json", out);
    st = et_write_file_atomic(path, js, strlen(js));
    free(js);
    return st;
}

// --seeds "1,2,3" into m (replacing the matrix's seeds).
static et_status parse_seeds(const char *s, ablation_matrix *m) {
    m->n_seeds = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        bool ok = end != p && errno == 0 && v >= 0 && (*end == ',' || !*end) &&
                  m->n_seeds < MAX_SEEDS && (*p >= '0' && *p <= '9');
        for (int k = 0; ok && k < m->n_seeds; k++) ok = m->seeds[k] != v;
        if (!ok)
            return et_err(ET_ERR_INVALID,
                          "--seeds \"%s\": expected 1 to %d distinct non-negative integers "
                          "separated by commas (e.g. --seeds 1,2,3)",
                          s, MAX_SEEDS);
        m->seeds[m->n_seeds++] = v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p)
            return et_err(ET_ERR_INVALID, "--seeds \"%s\": a trailing comma", s);
    }
    if (!m->n_seeds) return et_err(ET_ERR_INVALID, "--seeds is empty (e.g. --seeds 1,2,3)");
    return NULL;
}

int et_cli_ablate(int argc, char **argv) {
    static const et_cli_opt opts[] = {{"--matrix", true}, {"--out", true}, {"--seeds", true}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 3, &a);
    if (rc) return rc;
    if (a.help || !a.opt_val[0] || !a.opt_val[1]) {
        printf(
            "usage: emotune ablate -c CONFIG --matrix MATRIX.json --out DIR [--seeds 1,2,3] "
            "[key=value ...]\n"
            "Trains and evaluates one run per entry of the matrix (configs/ablation/*.json: "
            "a list of\nnamed config diffs), each in DIR/<run name>, and writes one markdown "
            "table (DIR/results.md)\nand DIR/results.json. Running it again over the same DIR "
            "reuses finished runs and resumes\nunfinished ones. key=value overrides apply to "
            "every run (before the matrix's own).\n--seeds (or the matrix's \"seeds\") repeats "
            "every run once per train.seed, in DIR/<run name>/seed-S,\nand the table gives "
            "mean ± standard deviation over the seeds.\n");
        return a.help ? 0 : 2;
    }
    if (!a.config) {
        fprintf(stderr,
                "emotune: error: ablate: no config given: pass -c FILE (the base config "
                "every run of the matrix changes, e.g. -c configs/tiny-emola.json)\n");
        return 2;
    }
    char *text = NULL;
    size_t n = 0;
    ablation_matrix m;
    et_status st = et_read_file(a.opt_val[0], ET_CONFIG_MAX_BYTES, &text, &n);
    if (!st) st = matrix_parse(a.opt_val[0], text, &m);
    free(text);
    if (st) return et_cli_fail(st);
    if (a.opt_val[2]) st = parse_seeds(a.opt_val[2], &m);
    // Every run's config must load before the first one trains.
    for (int r = 0; r < m.n_runs && !st; r++) {
        const char *over[ET_CLI_MAX_OVERRIDES + 2 * MAX_OVER];
        int k = run_overrides(&a, &m, &m.runs[r], over);
        et_run_config c;
        st = et_run_config_load(a.config, k, over, &c);
        if (!st) {  // and every input path it reads must exist
            st = et_run_config_check_paths(
                &c, ET_RC_NEED_MODEL | ET_RC_NEED_TRAIN_DATA | ET_RC_NEED_EVAL_DATA);
            et_run_config_free(&c);
        }
        if (st) st = et_status_wrap(st, "%s: run \"%s\"", a.opt_val[0], m.runs[r].name);
    }
    const int ns = m.n_seeds ? m.n_seeds : 1;
    ablation_row *rows = calloc((size_t)(m.n_runs * ns), sizeof *rows);
    if (!st && !rows) st = et_err(ET_ERR_NOMEM, "ablate: out of memory");
    if (!st) st = et_mkdirs(a.opt_val[1]);
    for (int r = 0; r < m.n_runs && !st; r++)
        for (int k = 0; k < ns && !st; k++)
            st = run_one(&a, &m, &m.runs[r], m.n_seeds ? &m.seeds[k] : NULL, a.opt_val[1],
                         &rows[r * ns + k]);
    if (!st) st = write_results(a.opt_val[1], &m, rows);
    free(rows);
    matrix_free(&m);
    return st ? et_cli_fail(st) : 0;
}
