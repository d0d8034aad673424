// tools/emotune/cmd_pretrain.c - `emotune pretrain-tower` (contrastive pretraining of the tiny
// CLIP-style tower, train/pretrain_tower.h) and `emotune probe` (a linear probe of a tower's
// pooled features, train/eval/probe.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train/eval/probe.h"
#include "train/pretrain_face.h"
#include "train/pretrain_tower.h"

typedef et_status (*aux_run_fn)(const et_run_config *, const et_train_opts *, et_pretrain_result *);
typedef void (*aux_print_fn)(const et_run_config *, const et_pretrain_result *);

// The shared body of the pretraining commands (train/aux_run.h): options, config, the run,
// the summary lines; `print` adds the command's own lines after a finished run.
static int aux_command(int argc, char **argv, const char *name, const char *help, aux_run_fn run,
                       aux_print_fn print) {
    static const et_cli_opt opts[] = {{"--resume", false}, {"--overwrite", false}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 2, &a);
    if (rc) return rc;
    if (a.help) {
        printf("usage: emotune %s -c CONFIG [--resume | --overwrite] [key=value ...]\n%s", name,
               help);
        et_cli_print_usage("", true);
        return 0;
    }
    et_run_config c;
    if ((rc = et_cli_load_config(&a, name, ET_RC_NEED_MODEL | ET_RC_NEED_TRAIN_DATA, &c)))
        return rc;
    et_train_opts to = {.resume = a.flag[0], .overwrite = a.flag[1]};
    et_pretrain_result res;
    et_status st = run(&c, &to, &res);
    if (st) {
        et_run_config_free(&c);
        return et_cli_fail(st);
    }
    printf("%s: %lld/%lld steps, loss %.4f -> %.4f, %.1f s, %.1f images/s%s\n", name,
           (long long)res.steps, (long long)res.total_steps, res.first_loss, res.last_loss,
           res.seconds, res.images_per_s, res.interrupted ? " (interrupted)" : "");
    if (res.bad_samples) printf("%s: %lld samples skipped\n", name, (long long)res.bad_samples);
    if (res.checkpoint[0]) printf("%s: checkpoint %s\n", name, res.checkpoint);
    if (!res.interrupted) print(&c, &res);
    et_run_config_free(&c);
    return res.interrupted ? 130 : 0;
}

static void print_tower(const et_run_config *c, const et_pretrain_result *res) {
    printf("pretrain-tower: tower %s/tower\n", c->output_dir);
    if (res->evaluated)
        printf(
            "pretrain-tower: eval %s (%lld images): image->text retrieval %.2f %%, zero-shot "
            "emotion %.2f %% (%d classes)\n",
            c->eval_data, (long long)res->n_eval, 100 * res->retrieval_acc, 100 * res->zeroshot_acc,
            res->n_classes);
}

int et_cli_pretrain_tower(int argc, char **argv) {
    return aux_command(
        argc, argv, "pretrain-tower",
        "Pretrains the vision tower of model.vision (or model.vision_path) contrastively on\n"
        "image-caption pairs (data.train: LLaVA-format JSON, the gpt turn is the caption):\n"
        "CLIP's symmetric InfoNCE with a learned temperature against a small text encoder\n"
        "(clip.* keys). Writes checkpoints/, metrics.jsonl and, at the end, tower/ (HF\n"
        "CLIPVisionModel: use it as model.vision_path) and clip_head.safetensors to\n"
        "train.output_dir; then evaluates data.eval (retrieval and zero-shot emotion\n"
        "accuracy). --resume / --overwrite, the lock and Ctrl-C behave as in `emotune "
        "train`.\n",
        et_pretrain_tower_run, print_tower);
}

static void print_face(const et_run_config *c, const et_pretrain_result *res) {
    printf("pretrain-face: network %s/face_net\n", c->output_dir);
    if (res->evaluated)
        printf(
            "pretrain-face: eval %s (%lld faces): landmark NME %.2f %% (inter-ocular), age %.2f "
            "%%, gender %.2f %%, race %.2f %%\n",
            c->eval_data, (long long)res->n_eval, 100 * res->nme, 100 * res->age_acc,
            100 * res->gender_acc, 100 * res->race_acc);
}

int et_cli_pretrain_face(int argc, char **argv) {
    return aux_command(
        argc, argv, "pretrain-face",
        "Trains the face analysis network (FaceXFormer's architecture) of model.face_net\n"
        "(random) or model.face_net_path (continued) on data.train: faces with \"landmark\"\n"
        "(68 points) and \"attributes\" {age, gender, race}. Loss: face.landmark_weight x L1\n"
        "of the landmarks + cross-entropies of age (8 bins), gender, race (5 groups).\n"
        "Writes checkpoints/, metrics.jsonl and face_net/ (config.json + model.safetensors,\n"
        "FaceXFormer names) to train.output_dir, then scores data.eval: landmark NME\n"
        "(inter-ocular) and the attribute accuracies. --resume / --overwrite, the lock and\n"
        "Ctrl-C behave as in `emotune train`.\n",
        et_pretrain_face_run, print_face);
}

static void print_probe(const char *what, const et_probe_result *r, int64_t D) {
    printf(
        "probe: %s: %s features (D=%lld): train %.2f %%, test %.2f %% (%lld train, %lld test, %d "
        "classes, %d L-BFGS iterations, l2 %g",
        what, r->feature_kind, (long long)D, 100 * r->train_acc, 100 * r->test_acc,
        (long long)r->n_train, (long long)r->n_test, r->n_classes, r->iters, r->l2);
    if (r->cv_acc == r->cv_acc)
        printf(" by 5-fold cross-validation on train: %.2f %%", 100 * r->cv_acc);
    printf(")\n");
}

int et_cli_probe(int argc, char **argv) {
    static const et_cli_opt opts[] = {{"--random", false}, {"--l2", true}, {"--patch-mean", false}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 3, &a);
    if (rc) return rc;
    if (a.help) {
        printf(
            "usage: emotune probe -c CONFIG [model.vision_path=DIR] [--random] [--l2 X] "
            "[--patch-mean]\n"
            "Linear probe of a vision tower: its pooled features (post_layernorm(CLS) when the\n"
            "tower has a post_layernorm, else the mean of the model.select_layer patch features)\n"
            "of data.train -> multinomial logistic regression (standardised features, penalty\n"
            "L2 = X, by default chosen by 5-fold cross-validation on data.train alone, L-BFGS)\n"
            "-> accuracy on data.eval, by the samples' \"label\".\n"
            "The tower is model.vision_path, else the random tower of model.vision (the one\n"
            "`emotune train` builds). --random also probes a random tower of the same shape.\n"
            "--patch-mean uses the patch mean even when the tower has a post_layernorm.\n");
        et_cli_print_usage("", false);
        return 0;
    }
    double l2 = -1;  // cross-validated
    if (a.opt_val[1]) {
        char *end = NULL;
        l2 = strtod(a.opt_val[1], &end);
        if (!end || *end || !(l2 >= 0)) {
            fprintf(stderr, "emotune: error: --l2 \"%s\" must be a number >= 0\n", a.opt_val[1]);
            return 2;
        }
    }
    et_run_config c;
    if ((rc = et_cli_load_config(
             &a, "probe", ET_RC_NEED_MODEL | ET_RC_NEED_TRAIN_DATA | ET_RC_NEED_EVAL_DATA, &c)))
        return rc;
    et_status st = NULL;
    if (!c.train_data[0] || !c.eval_data[0])
        st = et_err(ET_ERR_INVALID,
                    "config: the probe fits on data.train and scores data.eval: set both");
    et_clip_vision v;
    memset(&v, 0, sizeof v);
    et_clip_config vc;
    char what[700];
    if (!st && c.vision_path[0]) {
        st = et_clip_vision_load(c.vision_path, &v);
        snprintf(what, sizeof what, "tower %s", c.vision_path);
    } else if (!st) {
        if (!c.vision_json)
            st = et_err(ET_ERR_INVALID, "config: set model.vision_path or model.vision");
        if (!st) st = et_clip_config_from_json(c.vision_json, "config model.vision", &vc);
        if (!st) st = et_clip_vision_new_random(&vc, c.init_std, (uint64_t)c.init_seed + 1, &v);
        snprintf(what, sizeof what, "random tower (model.vision, seed %lld)",
                 (long long)c.init_seed + 1);
    }
    if (!st) st = et_clip_check_select_layer(&v.cfg, c.select_layer, "model.select_layer");
    et_image_set tr, te;
    memset(&tr, 0, sizeof tr), memset(&te, 0, sizeof te);
    const bool pad = !strcmp(c.image_aspect_ratio, "pad");
    if (!st) st = et_image_set_load(c.train_data, c.data_root, (int)v.cfg.image_size, pad, &tr);
    if (!st) st = et_image_set_load(c.eval_data, c.data_root, (int)v.cfg.image_size, pad, &te);
    if (!st && (tr.n_skipped || te.n_skipped))
        fprintf(stderr, "probe: %lld + %lld samples skipped (first: %s)\n", (long long)tr.n_skipped,
                (long long)te.n_skipped, tr.n_skipped ? tr.first_error : te.first_error);
    et_probe_result res;
    if (!st) st = et_probe_run(&v, &tr, &te, c.select_layer, a.flag[2], l2, &res);
    if (!st) print_probe(what, &res, v.cfg.hidden_size);
    if (!st && a.flag[0] && c.vision_path[0]) {
        et_clip_vision rv;
        st = et_clip_vision_new_random(&v.cfg, c.init_std, (uint64_t)c.init_seed + 1, &rv);
        if (!st) st = et_probe_run(&rv, &tr, &te, c.select_layer, a.flag[2], l2, &res);
        if (!st) print_probe("random tower of the same shape", &res, v.cfg.hidden_size);
        et_clip_vision_free(&rv);
    }
    et_image_set_free(&tr), et_image_set_free(&te);
    et_clip_vision_free(&v);
    et_run_config_free(&c);
    if (st) return et_cli_fail(st);
    return 0;
}
