// tests/test_golden_llava.c - the assembled MLLM against a LLaVA-style composition in torch
// with PEFT LoRA (tests/golden/llava/, written by tools/golden/gen_llava.py; references in
// float64).
//
// - the LLaVA-1.5 config of the composition parses (mlp2x_gelu, 32, -2, patch, pad);
// - splice (embeddings, labels, mask, positions) equals LLaVA's
//   prepare_inputs_labels_for_multimodal; loss and the gradient of every lora_A / lora_B
//   and projector parameter match within 1e-4 (max-norm relative);
// - the adapter exported with et_lora_save_adapter and the merged checkpoint written by
//   et_export_merged_llama (sharded) re-import in C and reproduce the unmerged logits
//   (1e-4). With EMOTUNE_KEEP_EXPORT=DIR both are kept in DIR/adapter and DIR/merged for
//   `gen_llava.py --check-export DIR`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "train/io/export.h"
#include "train/models/llama.h"
#include "train/io/llama_load.h"
#include "train/models/lora.h"
#include "train/models/mllm.h"
#include "test_util.h"

#define DIR EMOTUNE_SOURCE_DIR "/tests/golden/llava"
#define TOL 1e-4

static et_st_file *g_ref;

static void die(et_status s, const char *what) {
    if (!s) return;
    fprintf(stderr, "%s: %s (regenerate with tools/golden/gen_llava.py)\n", what, et_status_msg(s));
    exit(1);
}

static et_tensor *gold(const char *name) {
    et_tensor *t = NULL;
    die(et_st_load(g_ref, name, &t), name);
    return t;
}

static void report(const char *what, double err) {
    const char *v = getenv("GOLDEN_VERBOSE");
    if (v && *v && *v != '0') printf("     %-64s rel err %.3g\n", what, err);
}

static void compare(const et_tensor *got, const et_tensor *ref, double tol, const char *what) {
    char b1[64], b2[64];
    CHECK(got && got->numel == ref->numel, "%s: %s vs reference %s", what,
          got ? et_shape_str(got, b1, sizeof b1) : "(null)", et_shape_str(ref, b2, sizeof b2));
    if (!got || got->numel != ref->numel) return;
    double err = tensor_rel_err(got, ref);
    CHECK(err <= tol, "%s: relative error %.3g > %.3g", what, err, tol);
    report(what, err);
}

typedef struct {
    et_clip_vision vision;
    et_projector proj;
    et_llama *llm;
    et_mllm m;
    et_lora_config lcfg;
    int n_lin;
    et_linear_layer *lin[64];
} model_t;

static void model_load(model_t *t) {
    memset(t, 0, sizeof *t);
    die(et_clip_vision_load(DIR "/clip", &t->vision), "clip");
    et_st_file *pf = NULL;
    die(et_st_open(DIR "/projector.safetensors", &pf), "projector");
    die(et_projector_load(&t->proj, ET_PROJ_MLP2X_GELU, 32, 32, pf, NULL), "projector");
    et_st_close(pf);
    die(et_llama_load(DIR "/llama", ET_F32, &t->llm), "llama");
    t->n_lin = et_mllm_decoder_linears(t->llm, t->lin);
    die(et_lora_load_adapter(DIR "/adapter", t->n_lin, t->lin, &t->lcfg), "adapter");
    t->m = (et_mllm){&t->vision, &t->proj, t->llm, -2, ET_CLIP_PATCH, ET_LLAVA_IMAGE_TOKEN, 0};
}

static void model_free(model_t *t) {
    et_clip_vision_free(&t->vision);
    et_projector_free(&t->proj);
    et_llama_free(t->llm);
}

static void test_llava_config(void) {
    et_llava_config c;
    et_status s = et_llava_config_load(DIR "/llava_config.json", &c);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK(!c.hf_layout && c.projector == ET_PROJ_MLP2X_GELU && c.mm_hidden_size == 32 &&
              c.select_layer == -2 && c.feature == ET_CLIP_PATCH && c.pad_to_square &&
              c.image_token == ET_LLAVA_IMAGE_TOKEN && !strcmp(c.vision_tower, "clip"),
          "parsed fields");
    et_status_free(s);
}

static void test_forward_backward(void) {
    model_t t;
    model_load(&t);
    et_tensor *ids[2] = {gold("ids0"), gold("ids1")}, *lab[2] = {gold("labels0"), gold("labels1")};
    et_tensor *px = gold("pixel_values");
    et_mllm_input in = {2, ids, lab, px, NULL};
    et_tensor *lg = NULL;
    et_mllm_batch b;
    et_status s = et_mllm_forward(&t.m, &in, NULL, &lg, &b);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        goto out;
    }
    et_tensor *r;
    compare(b.embeds, r = gold("embeds"), TOL, "spliced embeddings");
    et_release(r);
    const char *ints[3] = {"labels", "mask", "pos"};
    et_tensor *mine[3] = {b.labels, b.mask, b.pos};
    for (int i = 0; i < 3; i++) {
        r = gold(ints[i]);
        CHECK(et_same_shape(mine[i], r), "%s shape", ints[i]);
        bool eq = et_same_shape(mine[i], r);
        for (int64_t k = 0; eq && k < r->numel; k++) eq = et_get(mine[i], k) == et_get(r, k);
        CHECK(eq, "spliced %s differ from LLaVA's", ints[i]);
        et_release(r);
    }
    // Logits at real positions (pad rows are zero embeddings on both sides, compared too).
    compare(lg, r = gold("logits"), TOL, "logits");
    et_release(r);
    et_tensor *loss = et_llama_loss(lg, b.labels);
    r = gold("loss");
    CHECK_CLOSE(et_get(loss, 0), et_get(r, 0), TOL);
    report("loss", fabs(et_get(loss, 0) - et_get(r, 0)) / fabs(et_get(r, 0)));
    et_release(r);
    et_backward(loss);
    et_release(loss), et_release(lg);
    et_mllm_batch_free(&b);
    // LoRA gradients under PEFT's key names.
    int ngrad = 0;
    for (int i = 0; i < t.n_lin; i++) {
        for (int k = 0; k < 2; k++) {
            char nm[300];
            snprintf(nm, sizeof nm, "grad/base_model.model.%s.lora_%c.weight", t.lin[i]->name,
                     k ? 'B' : 'A');
            et_tensor *p = k ? t.lin[i]->lora_b : t.lin[i]->lora_a;
            r = gold(nm);
            compare(p ? p->grad : NULL, r, TOL, nm + 5);
            et_release(r);
            ngrad++;
        }
    }
    CHECK(ngrad == 28, "%d LoRA tensors", ngrad);
    const char *pn[4];
    et_tensor *pt[4];
    int np = et_projector_params(&t.proj, pn, pt);
    CHECK(np == 4, "projector params %d", np);
    for (int i = 0; i < np; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "grad/%s", pn[i]);
        r = gold(nm);
        compare(pt[i]->grad, r, TOL, nm + 5);
        et_release(r);
    }
out:
    et_release(ids[0]), et_release(ids[1]), et_release(lab[0]), et_release(lab[1]);
    et_release(px);
    model_free(&t);
}

static et_tensor *logits_on(et_llama *m, et_tensor *emb, et_tensor *pos, et_tensor *mask) {
    et_no_grad_begin();
    et_tensor *lg = et_llama_forward_embeds(m, emb, pos, mask, NULL, NULL);
    et_no_grad_end();
    return lg;
}

static void rm_rf(const char *p) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", p);
}

static void test_export_roundtrip(void) {
    model_t t;
    model_load(&t);
    const char *keep = getenv("EMOTUNE_KEEP_EXPORT");
    char root[512];
    if (keep && *keep) {
        snprintf(root, sizeof root, "%s", keep);
        rm_rf(root);
        mkdir(root, 0755);
    } else {
        snprintf(root, sizeof root, "/tmp/et_llava_XXXXXX");
        CHECK(mkdtemp(root) != NULL, "mkdtemp");
    }
    char adir[600], mdir[600];
    snprintf(adir, sizeof adir, "%s/adapter", root);
    snprintf(mdir, sizeof mdir, "%s/merged", root);
    et_tensor *emb = gold("embeds"), *pos = gold("pos"), *mask = gold("mask");
    et_tensor *ref = logits_on(t.llm, emb, pos, mask);
    et_tensor *gl = gold("logits");
    compare(ref, gl, TOL, "unmerged logits vs torch");
    et_release(gl);

    et_status s = et_lora_save_adapter(adir, &t.lcfg, t.n_lin, t.lin);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_export_opts o = et_export_defaults(t.llm);
    o.max_shard_bytes = 40000;  // several shards for the tiny model
    s = et_export_merged_llama(mdir, t.llm, &o);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    // The model itself is untouched by the export.
    et_tensor *again = logits_on(t.llm, emb, pos, mask);
    compare(again, ref, 0, "logits after export (model unchanged)");
    et_release(again);
    // Exporting over a non-empty directory refuses.
    s = et_export_merged_llama(mdir, t.llm, &o);
    CHECK(s && et_status_code(s) == ET_ERR_IO, "export over existing dir: %s", et_status_msg(s));
    et_status_free(s);

    // Sharded layout.
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", mdir);
    et_st_index *ix = NULL;
    s = et_st_index_open(p, &ix);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (ix)
        CHECK(et_st_index_num_tensors(ix) == 2 * 9 + 3, "%d tensors", et_st_index_num_tensors(ix));
    et_st_index_close(ix);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", mdir);
    struct stat st;
    bool two = stat(p, &st) == 0;
    snprintf(p, sizeof p, "%s/model-00001-of-00003.safetensors", mdir);
    bool three = stat(p, &st) == 0;
    CHECK(two || three, "expected 2-3 shards of at most 40000 bytes");

    // Merged checkpoint re-imports and reproduces the unmerged logits.
    et_llama *mm = NULL;
    s = et_llama_load(mdir, ET_F32, &mm);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (mm) {
        et_tensor *lg = logits_on(mm, emb, pos, mask);
        compare(lg, ref, TOL, "merged checkpoint logits vs unmerged");
        et_release(lg);
        et_llama_free(mm);
    }
    // Adapter re-imports onto a fresh base.
    et_llama *base = NULL;
    die(et_llama_load(DIR "/llama", ET_F32, &base), "llama");
    et_linear_layer *ls[64];
    int n = et_mllm_decoder_linears(base, ls);
    s = et_lora_load_adapter(adir, n, ls, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_tensor *lg = logits_on(base, emb, pos, mask);
    compare(lg, ref, TOL, "re-imported adapter logits vs unmerged");
    et_release(lg);
    et_llama_free(base);
    // bf16 merged export: loads, and is close (bf16 rounding of the weights).
    snprintf(p, sizeof p, "%s/merged_bf16", root);
    o.dtype = ET_BF16;
    o.max_shard_bytes = 1 << 30;
    s = et_export_merged_llama(p, t.llm, &o);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    mm = NULL;
    s = et_llama_load(p, ET_BF16, &mm);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (mm) {
        CHECK(mm->embed_tokens->dtype == ET_BF16, "bf16 weights");
        mm->act_dtype = ET_F32;
        et_tensor *l2 = logits_on(mm, emb, pos, mask);
        double e = tensor_rel_err(l2, ref);
        CHECK(e < 2e-2, "bf16 merged export: %.3g", e);
        report("bf16 merged export (f32 acts) vs unmerged f32", e);
        et_release(l2);
        et_llama_free(mm);
    }
    et_release(ref), et_release(emb), et_release(pos), et_release(mask);
    model_free(&t);
    if (!(keep && *keep)) rm_rf(root);
}

int main(void) {
    die(et_st_open(DIR "/ref.safetensors", &g_ref), "ref.safetensors");
    RUN(test_llava_config);
    RUN(test_forward_backward);
    RUN(test_export_roundtrip);
    et_st_close(g_ref);
    return test_summary();
}
