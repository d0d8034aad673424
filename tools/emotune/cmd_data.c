// tools/emotune/cmd_data.c - `emotune prepare`, `emotune generate`, `emotune convert`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/autograd.h"
#include "core/device.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/ops.h"
#include "data/attr_prompt.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "data/preprocess.h"
#include "data/store.h"
#include "data/template.h"
#include "train/emo_model.h"
#include "train/eval/evaluator.h"
#include "train/face_attrs.h"
#include "train/io/device_move.h"
#include "train/io/export.h"
#include "train/io/llama_load.h"
#include "train/models/generate.h"
#include "train/models/llama.h"
#include "train/runconfig.h"

// The loader's prior_fn: the model's raw face priors of one image (et_face_prior_raw).
static et_status prepare_priors(void *ctx, const float *pixels, const float *landmarks,
                                uint16_t *out) {
    et_emo_model *m = ctx;
    const int64_t S = m->image_size, R = et_face_prior_raw_dim(&m->prior),
                  D = et_face_prior_data_landmarks(&m->prior);
    et_tensor *px = et_from_data(ET_F32, 4, (int64_t[]){1, 3, S, S}, pixels);
    et_tensor *lm =
        landmarks && D > 0 ? et_from_data(ET_F32, 2, (int64_t[]){1, D}, landmarks) : NULL;
    et_tensor *raw = et_face_prior_raw(&m->prior, lm, px);
    et_tensor *host =
        raw->device.type == ET_CPU ? et_retain(raw) : et_to_device(raw, (et_device){ET_CPU, 0});
    for (int64_t i = 0; i < R; i++) out[i] = et_f32_to_bf16(ET_DATA(float, host)[i]);
    et_release(px), et_release(lm), et_release(raw), et_release(host);
    return NULL;
}

int et_cli_prepare(int argc, char **argv);
int et_cli_generate(int argc, char **argv);
int et_cli_convert(int argc, char **argv);

// ---- prepare --------------------------------------------------------------------

int et_cli_prepare(int argc, char **argv) {
    static const et_cli_opt opts[] = {{"--out", true}, {"--data", true}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 2, &a);
    if (rc) return rc;
    if (a.help || !a.opt_val[0]) {
        printf(
            "usage: emotune prepare -c CONFIG --out STORE.h5 [--data JSON] [key=value ...]\n"
            "Preprocesses a LLaVA-format dataset (default data.train) into one HDF5 store:\n"
            "token ids and labels (data.template, data.max_len), pixels resized and cropped "
            "to the\ntower's image size (u8, padded to square with data.image_aspect_ratio=pad),"
            " landmarks,\nvideos (data.video_frames frames each), attributes and sample metadata, "
            "exactly as the\nloader would. Samples that fail are skipped and counted; when all "
            "fail, nothing is written.\nThe store is renamed into place once complete. Train "
            "on it with data.store=STORE.h5.\n");
        return a.help ? 0 : 2;
    }
    et_run_config c;
    if ((rc = et_cli_load_config(
             &a, "prepare",
             a.opt_val[1] ? ET_RC_NEED_MODEL : ET_RC_NEED_MODEL | ET_RC_NEED_TRAIN_DATA, &c)))
        return rc;
    et_status st = NULL;
    const char *data = a.opt_val[1] ? a.opt_val[1] : c.train_data;
    et_emo_model m;
    st = et_emo_model_build(&c, &m);
    if (st) {
        et_run_config_free(&c);
        return et_cli_fail(st);
    }
    const et_template *tmpl = NULL;
    et_dataset *ds = NULL;
    if (!m.tok) st = et_err(ET_ERR_INVALID, "config: model.tokenizer is empty");
    if (!st && c.attr_prompt_enabled)
        st = et_err(ET_ERR_UNSUPPORTED,
                    "config: attribute_prompt.enabled: a store holds tokenised conversations and "
                    "does not record the prompt yet; prepare without it (and train from "
                    "data.train to use the prompt)");
    if (!st) st = et_template_get(c.template_name, &tmpl);
    const int D = (int)et_face_prior_data_landmarks(&m.prior);
    if (!st) {
        et_dataset_opts o = {.data_root = c.data_root[0] ? c.data_root : NULL,
                             .require_answer = true,
                             .landmark_dim = D,
                             .landmark_bound = et_face_prior_landmark_bound(&m.prior)};
        st = et_dataset_open(data, &o, &ds);
    }
    const int S = m.has_vision || m.load_pixels ? (int)m.image_size : 0;
    int64_t ok = 0, bad = 0;
    if (!st) {
        et_store_schema sc = {.image_size = S > 0 ? S : 1,
                              .landmark_dim = D,
                              .template_name = c.template_name,
                              .tokenizer_name = c.tokenizer,
                              .supervise = c.supervise,
                              .creator = "emotune prepare",
                              .compression = -1,
                              .prior_dim = (int)et_face_prior_raw_dim(&m.prior),
                              .prior_layout = et_face_prior_raw_layout(&m.prior)};
        et_loader_opts lo = et_loader_opts_default();
        lo.batch_size = 1, lo.max_len = c.max_len, lo.image_size = S;
        lo.pad_to_square = m.pad_to_square, lo.landmark_dim = D;
        lo.video_frames = c.video_frames;
        lo.workers = c.workers, lo.prefetch = c.prefetch > 4 ? c.prefetch : 4;
        lo.tmpl = tmpl, lo.tok = m.tok, lo.image_token = m.mllm.image_token;
        lo.supervise_all = !strcmp(c.supervise, "all");
        if (sc.prior_dim > 0)  // Face Info Mining: the frozen network runs once, here
            lo.prior_dim = sc.prior_dim, lo.prior_fn = prepare_priors, lo.prior_ctx = &m;
        st = et_loader_prepare_store(ds, &lo, &sc, a.opt_val[0], &ok, &bad);
    }
    et_dataset_close(ds);
    et_emo_model_free(&m);
    et_run_config_free(&c);
    if (st) return et_cli_fail(st);
    printf("prepare: %lld samples written to %s (%lld skipped)\n", (long long)ok, a.opt_val[0],
           (long long)bad);
    return 0;
}

// ---- generate -------------------------------------------------------------------

int et_cli_generate(int argc, char **argv) {
    static const et_cli_opt opts[] = {
        {"--image", true}, {"--prompt", true}, {"--landmarks", true}, {"--checkpoint", true}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 4, &a);
    if (rc) return rc;
    if (a.help || !a.opt_val[1]) {
        printf(
            "usage: emotune generate -c CONFIG --prompt TEXT [--image FILE] [--landmarks "
            "FILE.npy]\n                        [--checkpoint DIR] [key=value ...]\n"
            "Answers one question (use <image> in TEXT to place the image) with the trained "
            "model\n(newest checkpoint of train.output_dir unless --checkpoint). Decoding: "
            "eval.* keys.\n");
        return a.help ? 0 : 2;
    }
    et_run_config c;
    if ((rc = et_cli_load_config(&a, "generate", ET_RC_NEED_MODEL, &c))) return rc;
    et_emo_model m;
    et_status st = et_emo_model_build(&c, &m);
    if (st) {
        et_run_config_free(&c);
        return et_cli_fail(st);
    }
    if (m.use_images && !strstr(a.opt_val[1], "<image>"))
        st = et_err(ET_ERR_INVALID,
                    "generate: --prompt has no <image> placeholder; this model reads the image "
                    "where <image> stands, e.g. --prompt \"<image> What emotion does the face "
                    "show?\"");
    else if (m.load_pixels && !a.opt_val[0])
        st = et_err(ET_ERR_INVALID, "generate: this model reads an image%s: pass --image FILE",
                    m.use_images ? "" : " (Face Info Mining's face network)");
    if (!st) st = et_emo_model_load_checkpoint(&m, a.opt_val[3], c.output_dir, NULL, 0);
    if (!st && !strcmp(c.device, "cuda"))  // train.device: generate on the GPU
        st = et_emo_model_to_device(&m, (et_device){ET_CUDA, 0}, NULL);
    const et_template *tmpl = NULL;
    if (!st && !m.tok) st = et_err(ET_ERR_INVALID, "config: model.tokenizer is empty");
    if (!st) st = et_template_get(et_eval_template_name(&c), &tmpl);
    et_ids ids = {0};
    et_template_stop stop;
    et_tensor *pix = NULL, *lm = NULL;
    if (!st && a.opt_val[0] && m.load_pixels) {
        et_clip_preproc pp;
        et_clip_preproc_default(&pp, (int)m.image_size);
        pp.pad_square = m.pad_to_square;
        et_tensor *f = NULL;
        st = et_clip_preprocess_file(a.opt_val[0], &pp, &f);
        if (!st) {
            pix = et_reshape(f, 4, (int64_t[]){1, 3, m.image_size, m.image_size});
            et_release(f);
        }
    }
    const int64_t D = et_face_prior_data_landmarks(&m.prior);
    if (!st && D > 0) {
        if (!a.opt_val[2]) {
            st = et_err(
                ET_ERR_INVALID,
                "this model reads the sample's landmarks (%s): pass --landmarks "
                "FILE.npy (%lld values)",
                m.prior.kind & ET_PRIOR_LANDMARK ? "a landmark expert" : "fim.landmarks=dataset",
                (long long)D);
        } else {
            float *v = NULL;
            int nd = 0;
            int64_t shape[8];
            st = et_npy_read_f32(a.opt_val[2], &v, &nd, shape);
            int64_t n = 1;
            for (int d = 0; !st && d < nd; d++) n *= shape[d];
            if (!st && n != D)
                st = et_err(ET_ERR_INVALID, "%s: %lld values, expected %lld", a.opt_val[2],
                            (long long)n, (long long)D);
            if (!st) lm = et_from_data(ET_F32, 2, (int64_t[]){1, n}, v);
            free(v);
        }
    }
    if (!st) {  // the question, with the attribute prompt as in training
        et_chat_turn q = {.from = "human", .value = a.opt_val[1]};
        et_attr_prompt ap;
        char *agr = NULL;
        if (et_run_config_attr_prompt(&c, &ap)) {
            const bool net = !strcmp(c.attr_prompt_source, "network");
            const char *w[3] = {NULL, NULL, NULL};
            if (!net)
                st = et_err(ET_ERR_INVALID,
                            "config: attribute_prompt.source \"dataset\": generate has no sample "
                            "attributes; use source \"network\" (the face network reads them "
                            "from --image) or attribute_prompt.enabled=false");
            else if (!et_face_prior_raw_dim(&m.prior))
                st = et_err(ET_ERR_INVALID, "config: %s", ET_AGR_NETWORK_NEEDS_FIM);
            else
                et_face_attrs_of(&m.prior, pix, w);
            if (!st) st = et_attr_prompt_turns(&ap, &q, 1, w[0], w[1], w[2], &agr);
            if (!st) et_info("generate: attribute prompt from the face network: %s", agr);
        }
        et_template_opts to;
        et_template_opts_init(&to);
        to.image_id = m.mllm.image_token;
        if (!st) st = et_template_prompt(tmpl, m.tok, &q, 1, &to, &ids, &stop);
        free(agr);
    }
    if (!st) {
        et_no_grad_begin();
        et_tensor *visual = pix && m.use_images ? et_mllm_encode_images(&m.mllm, pix) : NULL;
        et_tensor *prior =
            m.prior.kind != ET_PRIOR_NONE ? et_face_prior_forward(&m.prior, lm, pix, NULL) : NULL;
        const int64_t n = (int64_t)ids.len;
        et_tensor *it = et_from_data(ET_I32, 1, &n, ids.data);
        et_mllm_batch b;
        st = et_mllm_splice(m.llm, m.mllm.image_token, c.max_len, 1, &it, NULL, visual, prior, &b);
        et_release(it), et_release(visual), et_release(prior);
        if (!st) {
            et_gen_opts go = et_eval_gen_opts(&c, &stop);
            et_tensor *out = NULL;
            int64_t n_new = 0;
            st = et_llama_generate_embeds(m.llm, b.embeds, b.mask, &go, &out, &n_new);
            if (!st) {
                char *text = et_eval_answer_text(m.tok, ET_DATA(int32_t, out), n_new, &stop);
                printf("%s\n", text);
                free(text);
            }
            et_release(out);
            et_mllm_batch_free(&b);
        }
        et_no_grad_end();
    }
    et_release(pix), et_release(lm);
    et_ids_free(&ids);
    et_emo_model_free(&m);
    et_run_config_free(&c);
    return st ? et_cli_fail(st) : 0;
}

// ---- convert --------------------------------------------------------------------

int et_cli_convert(int argc, char **argv) {
    static const et_cli_opt opts[] = {
        {"--from", true}, {"--out", true}, {"--dtype", true}, {"--shard-mb", true}};
    et_cli_args a;
    int rc = et_cli_parse(argc, argv, opts, 4, &a);
    if (rc) return rc;
    if (a.help || !a.opt_val[0] || !a.opt_val[1]) {
        printf(
            "usage: emotune convert --from HF_DIR --out DIR [--dtype f32|bf16|f16] "
            "[--shard-mb N]\nRe-saves an HF LLaMA-family decoder (config.json + safetensors, "
            "one file or sharded)\nas an HF checkpoint in another dtype / shard size, e.g. a "
            "bf16 copy for training.\n");
        return a.help ? 0 : 2;
    }
    et_dtype dt = ET_F32;
    if (a.opt_val[2]) {
        if (!strcmp(a.opt_val[2], "bf16"))
            dt = ET_BF16;
        else if (!strcmp(a.opt_val[2], "f16"))
            dt = ET_F16;
        else if (strcmp(a.opt_val[2], "f32"))
            return et_cli_fail(
                et_err(ET_ERR_INVALID, "--dtype %s: expected f32, bf16 or f16", a.opt_val[2]));
    }
    long long shard_mb = 0;  // checked before the model is read: MiB, shifted to bytes below
    if (a.opt_val[3]) {
        const long long max_mb = 1ll << 23;  // 8 TiB: far above any shard, far below overflow
        char *end = NULL;
        shard_mb = strtoll(a.opt_val[3], &end, 10);  // overflow saturates: caught by max_mb
        if (end == a.opt_val[3] || *end || shard_mb < 1 || shard_mb > max_mb)
            return et_cli_fail(et_err(ET_ERR_INVALID,
                                      "--shard-mb %s: expected a whole number of MiB from 1 to "
                                      "%lld (e.g. --shard-mb 5000)",
                                      a.opt_val[3], max_mb));
    }
    et_llama *llm = NULL;
    et_status st = et_llama_load(a.opt_val[0], dt, &llm);
    if (st) return et_cli_fail(st);
    et_export_opts eo = et_export_defaults(llm);
    eo.dtype = dt;
    if (shard_mb) eo.max_shard_bytes = (int64_t)shard_mb << 20;
    st = et_mkdirs(a.opt_val[1]);
    if (!st) st = et_export_merged_llama(a.opt_val[1], llm, &eo);
    et_llama_free(llm);
    if (st) return et_cli_fail(st);
    printf("convert: %s -> %s\n", a.opt_val[0], a.opt_val[1]);
    return 0;
}
