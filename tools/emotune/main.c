// tools/emotune/main.c - the `emotune` command: train, eval, generate, synth, prepare,
// convert, export, ablate. Every subcommand takes a run config (-c FILE, configs/*.json) and any
// number of key=value overrides (section.key=value; `emotune train --help` lists the keys).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/threads.h"
#include "data/synth.h"
#include "train/emo_model.h"
#include "train/eval/evaluator.h"
#include "train/io/export.h"
#include "train/runconfig.h"
#include "train/trainer.h"

typedef struct {
    const char *name;
    const char *summary;
    const char *usage;
    int (*run)(int argc, char **argv);
} command_t;

int et_cli_load_config(const et_cli_args *a, const char *cmd, unsigned need, et_run_config *c) {
    if (need && !a->config) {
        fprintf(stderr,
                "emotune: error: %s: no config given: pass -c FILE (e.g. -c "
                "configs/tiny-emola.json); `emotune %s --help` lists the keys\n",
                cmd, cmd);
        return 2;
    }
    et_status st = et_run_config_load(a->config, a->n_over, a->over, c);
    if (!st) {
        st = et_run_config_check_paths(c, need);
        if (st) et_run_config_free(c);
    }
    if (st) return et_cli_fail(st);
    et_threads_apply(c->threads);
    return 0;
}

void et_cli_print_usage(const char *usage, bool keys) {
    printf("%s", usage);
    printf(
        "\nCommon: -c, --config FILE   run config (JSON, see configs/)\n"
        "        key=value           override a config key, e.g. train.lr=3e-4\n"
        "        -h, --help          this help\n");
    if (keys) {
        printf("\n");
        et_run_config_help(stdout);
    }
}

// ---- train ----------------------------------------------------------------------

static int cmd_train(int argc, char **argv) {
    static const et_cli_opt opts[] = {
        {"--resume", false}, {"--print-config", false}, {"--overwrite", false}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 3, &a);
    if (rc) return rc;
    if (a.help) {
        et_cli_print_usage(
            "usage: emotune train -c CONFIG [--resume | --overwrite] [--print-config] "
            "[key=value ...]\n"
            "Instruction-tunes the config's model on data.train: LoRA + projector + "
            "face-prior expert,\ncheckpoints under train.output_dir/checkpoints, "
            "metrics.jsonl and TensorBoard events in\ntrain.output_dir, the PEFT adapter "
            "in train.output_dir/adapter at the end.\n"
            "train.trainable picks the groups (lora projector face_prior decoder tower "
            "embeddings;\n[] = LoRA + projector + expert); e.g. LLaVA stage 1: "
            "'train.trainable=[\"projector\"]'\nlora.enabled=false, full fine-tuning: "
            "'train.trainable=[\"decoder\",\"embeddings\"]' lora.enabled=false.\n"
            "  --resume        continue from the newest checkpoint (bit-identical)\n"
            "  --overwrite     move a previous run in train.output_dir aside (to\n"
            "                  DIR.old-<time>, nothing deleted) and start fresh; without\n"
            "                  --resume or --overwrite a non-empty train.output_dir is refused\n"
            "  --print-config  print the resolved config and exit\n"
            "One process per train.output_dir (DIR/.emotune.lock holds its pid). Ctrl-C, SIGTERM\n"
            "and SIGHUP finish the step, write a checkpoint and stop (again: quit at once).\n",
            true);
        return 0;
    }
    et_run_config c;
    const unsigned need = a.flag[1] ? 0 : ET_RC_NEED_MODEL | ET_RC_NEED_TRAIN_DATA;
    if ((rc = et_cli_load_config(&a, "train", need, &c))) return rc;
    if (a.flag[1]) {
        char *j = et_run_config_to_json(&c);
        printf("%s\n", j);
        free(j);
        et_run_config_free(&c);
        return 0;
    }
    et_train_result res;
    et_train_opts to = {.resume = a.flag[0], .overwrite = a.flag[2]};
    et_status st = et_train_run_ex(&c, &to, &res);
    et_run_config_free(&c);
    if (st) return et_cli_fail(st);
    printf("train: %lld/%lld steps, loss %.4f -> %.4f, %.1f s, %.0f tok/s%s%s\n",
           (long long)res.steps, (long long)res.total_steps, res.first_loss, res.last_loss,
           res.seconds, res.tokens_per_s, res.nan_skipped ? " (non-finite steps skipped)" : "",
           res.interrupted ? " (interrupted)" : "");
    if (res.checkpoint[0]) printf("train: checkpoint %s\n", res.checkpoint);
    if (res.moved_to[0]) printf("train: the previous run was moved to %s\n", res.moved_to);
    return res.interrupted ? 130 : 0;
}

// ---- eval -----------------------------------------------------------------------

static void print_metrics(const et_eval_summary *s) {
    const et_emo_eval_result *r = &s->result;
    printf("\n%-24s %s\n", "metric", "value");
    printf("%-24s %lld\n", "samples", (long long)r->n_samples);
    if (r->kind == ET_EVAL_EMOTION) {
        printf("%-24s %.2f %%\n", "accuracy (WAR)", 100 * r->accuracy);
        printf("%-24s %.2f %%\n", "UAR", 100 * r->uar);
        for (int k = 0; k < r->n_classes; k++)
            printf("  recall %-15s %.2f %%\n", r->class_names[k], 100 * r->class_recall[k]);
    } else {
        printf("%-24s %.2f\n", "AU F1 (mean)", 100 * r->f1_mean);
        for (int k = 0; k < r->n_aus; k++)
            if (r->au_included[k]) printf("  F1 AU%-16d %.2f\n", r->aus[k], 100 * r->au_f1[k]);
    }
    if (r->n_rouge > 0) {
        printf("%-24s %.2f\n", "ROUGE-L (S_ge)", r->s_ge);
        printf("%-24s %.2f\n", "REGE", r->rege);
    }
    if (s->n_skipped) printf("%-24s %lld\n", "skipped samples", (long long)s->n_skipped);
    printf("%-24s %s\n", "outputs", s->output_dir);
}

static int cmd_eval(int argc, char **argv) {
    static const et_cli_opt opts[] = {{"--checkpoint", true}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 1, &a);
    if (rc) return rc;
    if (a.help) {
        et_cli_print_usage(
            "usage: emotune eval -c CONFIG [--checkpoint DIR] [key=value ...]\n"
            "Generates answers for data.eval with the trained model (newest checkpoint "
            "of train.output_dir,\nor DIR: a step directory or a run directory) and "
            "scores them with EmoLA's rules: accuracy,\nUAR, WAR, confusion matrix (emotion) "
            "or per-AU F1 (au), ROUGE-L and REGE. Writes predictions.jsonl,\n"
            "metrics.json and confusion.png to eval.output_dir.\n",
            true);
        return 0;
    }
    et_run_config c;
    if ((rc = et_cli_load_config(&a, "eval", ET_RC_NEED_MODEL | ET_RC_NEED_EVAL_DATA, &c)))
        return rc;
    et_eval_summary s;
    et_status st = et_eval_run(&c, a.opt_val[0], &s);
    et_run_config_free(&c);
    if (st) return et_cli_fail(st);
    print_metrics(&s);
    return 0;
}

// ---- synth ----------------------------------------------------------------------

static int cmd_synth(int argc, char **argv) {
    static const et_cli_opt opts[] = {{"--out", true}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 1, &a);
    if (rc) return rc;
    if (a.help) {
        et_cli_print_usage(
            "usage: emotune synth [-c CONFIG] [--out DIR] [synth.n_train=N ...]\n"
            "Writes the synthetic-face dataset (images/*.png, landmarks/*.npy, train.json, "
            "test.json,\ncaptions_*.json, text_*.json) to DIR (default synth.dir): faces with "
            "the 7 basic emotions\nfrom EMFACS action units, detector-like 68-point landmarks, "
            "image degradations (JPEG,\nlow resolution, occlusion, noise, blur; synth.clean=true "
            "turns the first three and the\nlandmark noise off) and LLaVA-format "
            "conversations.\n",
            true);
        return 0;
    }
    et_run_config c;
    if ((rc = et_cli_load_config(&a, "synth", 0, &c))) return rc;
    et_synth_opts o;
    et_synth_opts_default(&o);
    o.seed = (uint64_t)c.synth_seed;
    o.n_train = c.synth_n_train, o.n_test = c.synth_n_test, o.size = c.synth_size;
    o.n_clips = c.synth_n_clips;
    o.noise = (float)c.synth_noise, o.blur = (float)c.synth_blur;
    o.jpeg_prob = (float)c.synth_jpeg_prob;
    o.jpeg_quality_min = c.synth_jpeg_quality_min, o.jpeg_quality_max = c.synth_jpeg_quality_max;
    o.lowres_prob = (float)c.synth_lowres_prob, o.lowres_min = (float)c.synth_lowres_min;
    o.occlusion_prob = (float)c.synth_occlusion_prob;
    o.landmark_noise = (float)c.synth_landmark_noise;
    o.landmark_fail_prob = (float)c.synth_landmark_fail_prob;
    o.pose_jitter = (float)c.synth_pose_jitter;
    o.intensity_min = (float)c.synth_intensity_min, o.intensity_max = (float)c.synth_intensity_max;
    o.descriptive_frac = (float)c.synth_descriptive_frac;
    o.au_question_frac = (float)c.synth_au_question_frac;
    o.n_text = c.synth_n_text;
    o.caption_style =
        strcmp(c.synth_caption_style, "prose") ? ET_SYNTH_CAPTION_SHORT : ET_SYNTH_CAPTION_PROSE;
    if (c.synth_clean) et_synth_opts_clean(&o);
    const char *dir = a.opt_val[0] ? a.opt_val[0] : c.synth_dir;
    et_status st = et_synth_check_opts(&o);
    if (!st) st = et_mkdirs(dir);
    if (!st) st = et_synth_write_dataset(&o, dir);
    et_run_config_free(&c);
    if (st) return et_cli_fail(st);
    printf("synth: %lld train + %lld test faces (%d px) in %s\n", (long long)o.n_train,
           (long long)o.n_test, o.size, dir);
    return 0;
}

// ---- export ---------------------------------------------------------------------

static int cmd_export(int argc, char **argv) {
    static const et_cli_opt opts[] = {{"--checkpoint", true},
                                      {"--out", true},
                                      {"--merged", false},
                                      {"--base", false},
                                      {"--overwrite", false}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 5, &a);
    if (rc) return rc;
    if (a.help || !a.opt_val[1]) {
        et_cli_print_usage(
            "usage: emotune export -c CONFIG --out DIR [--checkpoint DIR] [--merged] [--base] "
            "[--overwrite]\n"
            "Writes the trained model as a PEFT adapter (DIR/adapter: adapter_config.json +"
            " adapter_model.safetensors)\nplus the other trainables "
            "(DIR/non_lora_trainables.safetensors: projector, expert); with\n--merged "
            "a merged HF LlamaForCausalLM checkpoint (DIR/merged: config.json + sharded "
            "safetensors);\nwith --base the frozen base the adapter loads onto: DIR/base/llm "
            "(LlamaForCausalLM without\nthe adapters) and DIR/base/vision (CLIPVisionModel), "
            "e.g. for a randomly initialised model.\nPer train.trainable: a full fine-tune "
            "(decoder / embeddings) writes DIR/merged (no adapter),\na trained tower "
            "DIR/vision (CLIPVisionModel), a listed projector DIR/mm_projector.safetensors.\n"
            "The export is written to DIR.tmp-export-PID "
            "and renamed to DIR when complete; a non-empty DIR\nis refused unless --overwrite, "
            "which moves the old export to DIR.old-<time>.\nThe checkpoint's checksums are "
            "verified first.\n",
            true);
        return a.help ? 0 : 2;
    }
    et_run_config c;
    if ((rc = et_cli_load_config(&a, "export", ET_RC_NEED_MODEL, &c))) return rc;
    const char *out = a.opt_val[1];
    et_status st = et_export_check_out(out, a.flag[4]);  // before any work
    if (st) {
        et_run_config_free(&c);
        return et_cli_fail(st);
    }
    et_emo_model m;
    st = et_emo_model_build(&c, &m);
    char dir[4096];
    if (!st) st = et_emo_model_load_checkpoint(&m, a.opt_val[0], c.output_dir, dir, sizeof dir);
    unsigned what = ET_EXPORT_ADAPTER | ET_EXPORT_TRAINABLES;
    if (a.flag[2]) what |= ET_EXPORT_MERGED;
    if (a.flag[3]) what |= ET_EXPORT_BASE;
    if (a.flag[4]) what |= ET_EXPORT_OVERWRITE;
    if (!st) st = et_export_emo_model(out, &m, what);
    et_emo_model_free(&m);
    et_run_config_free(&c);
    if (st) return et_cli_fail(st);
    printf("export: %s -> %s (adapter, trainables%s%s)\n", dir, out, a.flag[2] ? ", merged" : "",
           a.flag[3] ? ", base" : "");
    return 0;
}

// ---- prepare / convert / generate --------------------------------------------------

int et_cli_prepare(int argc, char **argv);
int et_cli_generate(int argc, char **argv);
int et_cli_convert(int argc, char **argv);
int et_cli_ablate(int argc, char **argv);

static const command_t commands[] = {
    {"train", "instruction-tune a model (LoRA + projector + face-prior expert)", NULL, cmd_train},
    {"eval", "generate answers for an eval set and compute the papers' metrics", NULL, cmd_eval},
    {"generate", "answer one question about one image", NULL, et_cli_generate},
    {"synth", "write the synthetic-face dataset", NULL, cmd_synth},
    {"prepare", "preprocess a dataset into an HDF5 store", NULL, et_cli_prepare},
    {"convert", "re-save an HF / LLaVA decoder checkpoint (dtype, shards)", NULL, et_cli_convert},
    {"export", "write the PEFT adapter (+ merged HF checkpoint)", NULL, cmd_export},
    {"ablate", "train + evaluate a matrix of config diffs, one table", NULL, et_cli_ablate},
    {"pretrain-tower", "pretrain the vision tower on image-caption pairs (CLIP)", NULL,
     et_cli_pretrain_tower},
    {"pretrain-face", "train the face analysis network (landmarks, age, gender, race)", NULL,
     et_cli_pretrain_face},
    {"probe", "linear probe of a vision tower's features on the emotion labels", NULL,
     et_cli_probe},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f, "usage: emotune <command> [-c CONFIG] [options] [key=value ...]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n`emotune <command> --help` describes a command and lists the config keys;\n"
            "`emotune --version` prints the version.\n"
            "Quick start: tools/demo.sh (synthetic faces -> train -> eval on the CPU).\n");
}

#ifndef EMOTUNE_VERSION
#define EMOTUNE_VERSION "unknown"
#endif
#ifndef EMOTUNE_GIT_DESCRIBE
#define EMOTUNE_GIT_DESCRIBE ""
#endif

int main(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
        printf("emotune %s%s%s%s\n", EMOTUNE_VERSION, EMOTUNE_GIT_DESCRIBE[0] ? " (git " : "",
               EMOTUNE_GIT_DESCRIBE, EMOTUNE_GIT_DESCRIBE[0] ? ")" : "");
        return 0;
    }
    et_threads_init(argv);  // OpenMP wait policy (core/threads.h); may re-execute
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "emotune: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}

// ---- shared argument handling (cli.h) ----------------------------------------------

int et_cli_parse(int argc, char **argv, const et_cli_opt *opts, int n_opts, et_cli_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            a->help = true;
            continue;
        }
        if (!strcmp(s, "-c") || !strcmp(s, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "emotune: %s needs a file\n", s);
                return 2;
            }
            a->config = argv[++i];
            continue;
        }
        bool matched = false;
        for (int k = 0; k < n_opts && !matched; k++) {
            if (strcmp(s, opts[k].name)) continue;
            matched = true;
            a->flag[k] = true;
            if (opts[k].takes_value) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "emotune: %s needs a value\n", s);
                    return 2;
                }
                a->opt_val[k] = argv[++i];
            }
        }
        if (matched) continue;
        if (s[0] == '-') {
            fprintf(stderr, "emotune: unknown option %s (see --help)\n", s);
            return 2;
        }
        if (!strchr(s, '=')) {
            fprintf(stderr, "emotune: unexpected argument \"%s\" (overrides are key=value)\n", s);
            return 2;
        }
        if (a->n_over == 256) {
            fprintf(stderr, "emotune: too many overrides\n");
            return 2;
        }
        a->over[a->n_over++] = s;
    }
    return 0;
}

int et_cli_fail(et_status st) {
    fprintf(stderr, "emotune: error: %s\n", et_status_msg(st));
    et_status_free(st);
    return 1;
}
