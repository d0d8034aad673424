// train/runconfig.c - see runconfig.h
#include "runconfig.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../core/json_util.h"
#include "../data/attr_prompt.h"

typedef enum { K_INT, K_I64, K_F64, K_BOOL, K_STR, K_STRLIST, K_JSON } kind_t;

typedef struct {
    const char *key;  // "section.name"
    kind_t kind;
    size_t off;        // offset in et_run_config
    size_t size;       // K_STR: buffer size
    const char *dflt;  // JSON literal
    double lo, hi;     // numeric range (inclusive)
    const char *help;
} entry_t;

#define O(f) offsetof(et_run_config, f)
#define S(f) sizeof(((et_run_config *)0)->f)
#define BIG 1e18

static const entry_t table[] = {
    {"model.llm", K_JSON, O(llm_json), 0, "null", 0, 0,
     "decoder shape: HF LlamaConfig fields (random init) when model.llm_path is empty"},
    {"model.llm_path", K_STR, O(llm_path), S(llm_path), "\"\"", 0, 0,
     "HF decoder dir: config.json + model.safetensors or a sharded index"},
    {"model.vision", K_JSON, O(vision_json), 0, "null", 0, 0,
     "vision tower shape: HF CLIPVisionConfig fields (random init, frozen)"},
    {"model.vision_path", K_STR, O(vision_path), S(vision_path), "\"\"", 0, 0,
     "HF CLIP dir (CLIPModel or CLIPVisionModel safetensors)"},
    {"model.llava_path", K_STR, O(llava_path), S(llava_path), "\"\"", 0, 0,
     "a LLaVA-1.5 or llava-hf checkpoint dir (decoder + projector; tower from model.vision_path "
     "or its mm_vision_tower)"},
    {"model.tokenizer", K_STR, O(tokenizer), S(tokenizer), "\"\"", 0, 0, "HF tokenizer.json"},
    {"model.projector", K_STR, O(projector), S(projector), "\"mlp2x_gelu\"", 0, 0,
     "linear | mlp2x_gelu"},
    {"model.select_layer", K_INT, O(select_layer), 0, "-2", -64, 64,
     "vision hidden-state index (negative from the end)"},
    {"model.select_feature", K_STR, O(select_feature), S(select_feature), "\"patch\"", 0, 0,
     "patch | cls_patch"},
    {"model.face_prior", K_STR, O(face_prior), S(face_prior), "\"landmark\"", 0, 0,
     "none | landmark (EmoLA's expert) | fim (EMO-LLaMA's Face Info Mining; alias "
     "face_info_mining) | landmark+fim"},
    {"model.landmark_dim", K_INT, O(landmark_dim), 0, "136", 2, 100000,
     "landmark vector length (68 x 2 = 136 synthetic / iBUG, 106 x 2 = 212 EmoLA)"},
    {"model.prior_repeat", K_INT, O(prior_repeat), 0, "1", 1, 4096,
     "copies of the prior token after the visual tokens (1 = EmoLA)"},
    {"fim.global", K_BOOL, O(fim_global), 0, "true", 0, 0,
     "Face Info Mining: global clues (the face network's task tokens and mean fused map)"},
    {"fim.local", K_BOOL, O(fim_local), 0, "true", 0, 0,
     "Face Info Mining: local clues (the fused map sampled at the 68 landmarks)"},
    {"fim.local_pool", K_BOOL, O(fim_local_pool), 0, "false", 0, 0,
     "pool the local clues per facial region (jaw, brows, nose, eyes, mouth: 5) instead of "
     "68 points"},
    {"fim.landmarks", K_STR, O(fim_landmarks), S(fim_landmarks), "\"network\"", 0, 0,
     "where the local clues are sampled: network (its predicted landmarks) | dataset (the "
     "sample's 68 x 2 landmark field)"},
    {"fim.queries", K_INT, O(fim_queries), 0, "16", 1, 4096,
     "learnable queries of the clue aggregator = FIM tokens after the visual tokens"},
    {"fim.layers", K_INT, O(fim_layers), 0, "2", 1, 64, "clue aggregator layers"},
    {"fim.width", K_INT, O(fim_width), 0, "256", 1, 65536, "clue aggregator width"},
    {"fim.heads", K_INT, O(fim_heads), 0, "8", 1, 1024,
     "clue aggregator attention heads (divides fim.width)"},
    {"model.visual_tokens", K_BOOL, O(visual_tokens), 0, "true", 0, 0,
     "splice the image's visual tokens (false: the prior tokens alone, EmoLA's prior-only "
     "ablation)"},
    {"model.weight_dtype", K_STR, O(weight_dtype), S(weight_dtype), "\"f32\"", 0, 0,
     "frozen base weights: f32 | bf16"},
    {"model.init_std", K_F64, O(init_std), 0, "0.02", 0, 10, "std of random decoder weights"},
    {"model.init_lm_head_std", K_F64, O(init_lm_head_std), 0, "0", 0, 100,
     "std of a random lm_head (0 = init_std); a from-scratch demo needs confident logits"},
    {"model.init_seed", K_I64, O(init_seed), 0, "1", 0, BIG, "seed of random weights"},
    {"model.projector_path", K_STR, O(projector_path), S(projector_path), "\"\"", 0, 0,
     "projector weights to start from (LLaVA's pretrain_mm_mlp_adapter): a stage-1 "
     "mm_projector.safetensors or an export's non_lora_trainables.safetensors"},
    {"model.face_net", K_JSON, O(face_net_json), 0, "null", 0, 0,
     "face analysis network shape (FaceXFormer's architecture, train/models/face_net.h fields; "
     "emotune pretrain-face trains it from random)"},
    {"model.face_net_path", K_STR, O(face_net_path), S(face_net_path), "\"\"", 0, 0,
     "a trained face analysis network (config.json + model.safetensors, FaceXFormer names)"},
    {"face.landmark_weight", K_F64, O(face_landmark_weight), 0, "10", 0, 1e6,
     "pretrain-face: weight of the landmark L1 loss against the age, gender, race CEs"},
    {"lora.enabled", K_BOOL, O(lora_enabled), 0, "true", 0, 0, "attach LoRA adapters"},
    {"lora.r", K_INT, O(lora_r), 0, "16", 1, 4096, "LoRA rank"},
    {"lora.alpha", K_F64, O(lora_alpha), 0, "32", 0, 1e9, "LoRA alpha"},
    {"lora.dropout", K_F64, O(lora_dropout), 0, "0.05", 0, 0.999, "LoRA dropout"},
    {"lora.use_rslora", K_BOOL, O(lora_use_rslora), 0, "false", 0, 0, "scale alpha/sqrt(r)"},
    {"lora.targets", K_STRLIST, O(lora_targets), O(lora_n_targets),
     "[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\",\"gate_proj\",\"up_proj\",\"down_proj\"]", 0, 0,
     "module-name suffixes of the decoder Linears that get adapters"},
    {"lora.regex", K_STR, O(lora_regex), S(lora_regex), "\"\"", 0, 0,
     "full-match regex over module names (instead of targets)"},
    {"data.train", K_STR, O(train_data), S(train_data), "\"\"", 0, 0,
     "training data: LLaVA-format JSON / JSONL"},
    {"data.store", K_STR, O(store), S(store), "\"\"", 0, 0,
     "a prepared HDF5 store (`emotune prepare`); when set, training reads it instead of "
     "data.train (its image size, landmark_dim, template and tokenizer must match)"},
    {"data.video_frames", K_INT, O(video_frames), 0, "8", 1, 1024,
     "frames sampled uniformly from each video (np.linspace)"},
    {"data.eval", K_STR, O(eval_data), S(eval_data), "\"\"", 0, 0,
     "evaluation data: LLaVA-format JSON / JSONL"},
    {"data.root", K_STR, O(data_root), S(data_root), "\"\"", 0, 0,
     "media root: image / landmark paths resolve under it (default: the data file's dir)"},
    {"data.template", K_STR, O(template_name), S(template_name), "\"vicuna_v1\"", 0, 0,
     "conversation template: vicuna_v1 | llava_v1 | llava_llama_2 | llama_3 | plain"},
    {"data.supervise", K_STR, O(supervise), S(supervise), "\"answers\"", 0, 0,
     "labels: answers (LLaVA: the gpt turns) | all (every token: causal-LM pretraining of the "
     "decoder on conversations in the template's words)"},
    {"data.max_len", K_INT, O(max_len), 0, "2048", 8, 1 << 24, "model_max_length"},
    {"data.image_aspect_ratio", K_STR, O(image_aspect_ratio), S(image_aspect_ratio), "\"pad\"", 0,
     0, "pad | square"},
    {"data.group_by_modality_length", K_BOOL, O(group_by_modality_length), 0, "false", 0, 0,
     "LLaVA's modality-aware length grouping"},
    {"data.workers", K_INT, O(workers), 0, "2", 0, 256, "loader worker threads"},
    {"data.prefetch", K_INT, O(prefetch), 0, "4", 1, 1024, "batches decoded ahead"},
    {"data.max_bad_samples", K_INT, O(max_bad_samples), 0, "100", 0, 1 << 30,
     "stop when more samples than this fail to load"},
    {"synth.dir", K_STR, O(synth_dir), S(synth_dir), "\"runs/synth\"", 0, 0,
     "where `emotune synth` writes the synthetic dataset"},
    {"synth.n_train", K_INT, O(synth_n_train), 0, "2000", 0, 1 << 28, "training faces"},
    {"synth.n_test", K_INT, O(synth_n_test), 0, "350", 0, 1 << 28, "held-out faces"},
    {"synth.n_clips", K_INT, O(synth_n_clips), 0, "0", 0, 1 << 20,
     "clips (directories of frames, neutral -> apex) written to clips.json"},
    {"synth.size", K_INT, O(synth_size), 0, "64", 16, 4096, "image size (pixels)"},
    {"synth.seed", K_I64, O(synth_seed), 0, "1", 0, BIG, "generator seed"},
    {"synth.noise", K_F64, O(synth_noise), 0, "3", 0, 64,
     "max pixel noise std (0..255 units), uniform per face"},
    {"synth.blur", K_F64, O(synth_blur), 0, "0.5", 0, 8, "max blur sigma (pixels at 64 px)"},
    {"synth.jpeg_prob", K_F64, O(synth_jpeg_prob), 0, "0.3", 0, 1, "faces JPEG-compressed"},
    {"synth.jpeg_quality_min", K_INT, O(synth_jpeg_quality_min), 0, "20", 1, 100,
     "lowest JPEG quality"},
    {"synth.jpeg_quality_max", K_INT, O(synth_jpeg_quality_max), 0, "80", 1, 100,
     "highest JPEG quality"},
    {"synth.lowres_prob", K_F64, O(synth_lowres_prob), 0, "0.25", 0, 1,
     "faces downscaled and upscaled back"},
    {"synth.lowres_min", K_F64, O(synth_lowres_min), 0, "0.4", 0.1, 1,
     "smallest downscale factor (fraction of synth.size)"},
    {"synth.occlusion_prob", K_F64, O(synth_occlusion_prob), 0, "0.15", 0, 1,
     "faces with an occluder (sunglasses, a hand, a rectangle)"},
    {"synth.landmark_noise", K_F64, O(synth_landmark_noise), 0, "2", 0, 10,
     "detector-like landmark error scale (0 = exact, 1 = a real detector on 64-px faces)"},
    {"synth.landmark_fail_prob", K_F64, O(synth_landmark_fail_prob), 0, "0.05", 0, 1,
     "failed detections (expression lost) when landmark_noise > 0"},
    {"synth.clean", K_BOOL, O(synth_clean), 0, "false", 0, 0,
     "no JPEG, low resolution, occlusion or landmark noise (the pre-benchmark faces)"},
    {"synth.pose_jitter", K_F64, O(synth_pose_jitter), 0, "1", 0, 2, "scales the pose ranges"},
    {"synth.intensity_min", K_F64, O(synth_intensity_min), 0, "0.6", 0, 1,
     "lowest expression intensity"},
    {"synth.intensity_max", K_F64, O(synth_intensity_max), 0, "1", 0, 1,
     "highest expression intensity"},
    {"synth.descriptive_frac", K_F64, O(synth_descriptive_frac), 0, "0", 0, 1,
     "train/test questions that ask for a description"},
    {"synth.au_question_frac", K_F64, O(synth_au_question_frac), 0, "0", 0, 1,
     "train/test questions that ask for the AUs"},
    {"synth.n_text", K_INT, O(synth_n_text), 0, "10000", 0, 10000000,
     "text-only pretraining samples in text_train.json (text_test.json: a tenth)"},
    {"synth.caption_style", K_STR, O(synth_caption_style), S(synth_caption_style), "\"short\"", 0,
     0, "captions_*.json words: short (one fixed structure) or prose (varied sentences)"},
    {"clip.text_width", K_INT, O(clip_text_width), 0, "64", 8, 4096,
     "pretrain-tower: width of the text encoder (a causal transformer, EOS pooling)"},
    {"clip.text_layers", K_INT, O(clip_text_layers), 0, "1", 1, 48, "text encoder layers"},
    {"clip.text_heads", K_INT, O(clip_text_heads), 0, "2", 1, 64,
     "text encoder attention heads (divides clip.text_width)"},
    {"clip.max_text_len", K_INT, O(clip_max_text_len), 0, "64", 4, 4096,
     "caption tokens kept (EOS included; longer captions are cut)"},
    {"clip.projection_dim", K_INT, O(clip_projection_dim), 0, "64", 2, 4096,
     "joint embedding size (visual_projection, text_projection)"},
    {"clip.logit_scale_init", K_F64, O(clip_logit_scale_init), 0, "2.6592", 0, 4.6052,
     "initial log temperature (CLIP: ln(1/0.07); clamped at ln(100))"},
    {"clip.flip", K_BOOL, O(clip_flip), 0, "true", 0, 0,
     "augmentation: mirror half of the training images (seeded)"},
    {"clip.shuffle_block", K_INT, O(clip_shuffle_block), 0, "1", 1, 1 << 20,
     "batches from shuffled blocks of this many consecutive samples (7 = one synthetic "
     "identity showing all 7 emotions: only the expression tells its captions apart)"},
    {"clip.gray", K_F64, O(clip_gray), 0, "0", 0, 1,
     "augmentation: probability of turning a training image grey (hides the colour shortcut)"},
    {"clip.prompt", K_STR, O(clip_prompt), S(clip_prompt), "\"a face showing {label}.\"", 0, 0,
     "zero-shot prompt per class ({label} = the class name)"},
    {"attribute_prompt.enabled", K_BOOL, O(attr_prompt_enabled), 0, "false", 0, 0,
     "EMO-LLaMA's age-gender-race prompt in the first human turn"},
    {"attribute_prompt.source", K_STR, O(attr_prompt_source), S(attr_prompt_source), "\"dataset\"",
     0, 0, "where the attributes come from: the samples' \"attributes\" object"},
    {"attribute_prompt.template", K_STR, O(attr_prompt_template), S(attr_prompt_template),
     "\"" ET_ATTR_PROMPT_DEFAULT "\"", 0, 0, "the prompt: text with {age}, {gender}, {race}"},
    {"attribute_prompt.position", K_STR, O(attr_prompt_position), S(attr_prompt_position),
     "\"prefix\"", 0, 0, "prefix (before the question, after the media) or suffix"},
    {"train.output_dir", K_STR, O(output_dir), S(output_dir), "\"runs/train\"", 0, 0,
     "checkpoints, logs, exports"},
    {"train.epochs", K_INT, O(epochs), 0, "1", 1, 1 << 20, "passes over the data"},
    {"train.max_steps", K_I64, O(max_steps), 0, "0", 0, BIG, "optimizer steps (0 = from epochs)"},
    {"train.batch_size", K_INT, O(batch_size), 0, "16", 1, 1 << 20, "per-step micro-batch"},
    {"train.grad_accum", K_INT, O(grad_accum), 0, "1", 1, 1 << 20,
     "micro-batches per optimizer step"},
    {"train.lr", K_F64, O(lr), 0, "1e-4", 0, 10, "base learning rate (LoRA, expert)"},
    {"train.modality_dropout", K_F64, O(modality_dropout), 0, "0", 0, 1,
     "per sample, blank the image or the landmarks (each p/2) when both are in use"},
    {"train.mm_projector_lr", K_F64, O(mm_projector_lr), 0, "0", 0, 10,
     "projector lr (0 = train.lr), LLaVA's mm_projector_lr"},
    {"train.expert_lr", K_F64, O(expert_lr), 0, "0", 0, 10, "face-prior expert lr (0 = train.lr)"},
    {"train.fim_lr", K_F64, O(fim_lr), 0, "0", 0, 10,
     "Face Info Mining's aggregator and projector lr (0 = train.expert_lr, else train.lr)"},
    {"train.decoder_lr", K_F64, O(decoder_lr), 0, "0", 0, 10,
     "lr of the decoder and embeddings groups (0 = train.lr)"},
    {"train.tower_lr", K_F64, O(tower_lr), 0, "0", 0, 10, "lr of the tower group (0 = train.lr)"},
    {"train.trainable", K_STRLIST, O(trainable), O(n_trainable), "[]", 0, 0,
     "parameter groups to train: lora projector face_prior decoder tower embeddings ([] = "
     "lora if enabled + projector + face_prior)"},
    {"train.weight_decay", K_F64, O(weight_decay), 0, "0", 0, 10, "AdamW weight decay"},
    {"train.adam_beta1", K_F64, O(adam_beta1), 0, "0.9", 0, 0.999999, "AdamW beta1"},
    {"train.adam_beta2", K_F64, O(adam_beta2), 0, "0.999", 0, 0.999999999, "AdamW beta2"},
    {"train.adam_eps", K_F64, O(adam_eps), 0, "1e-8", 0, 1, "AdamW eps"},
    {"train.lr_scheduler", K_STR, O(lr_scheduler), S(lr_scheduler), "\"cosine\"", 0, 0,
     "constant | constant_with_warmup | linear | cosine"},
    {"train.warmup_ratio", K_F64, O(warmup_ratio), 0, "0.03", 0, 1, "warmup fraction"},
    {"train.warmup_steps", K_I64, O(warmup_steps), 0, "0", 0, BIG,
     "warmup steps (overrides the ratio when > 0)"},
    {"train.max_grad_norm", K_F64, O(max_grad_norm), 0, "1.0", 0, 1e12,
     "global-norm clipping (0 = off)"},
    {"train.seed", K_I64, O(seed), 0, "1", 0, BIG, "data order, LoRA init and dropout seed"},
    {"train.log_every", K_INT, O(log_every), 0, "10", 1, 1 << 30, "steps between log lines"},
    {"train.save_every", K_INT, O(save_every), 0, "0", 0, 1 << 30,
     "steps between checkpoints (0 = only at the end)"},
    {"train.keep_last", K_INT, O(keep_last), 0, "2", 1, 1 << 20, "checkpoints kept"},
    {"train.nan_limit", K_INT, O(nan_limit), 0, "10", 0, 1 << 30,
     "non-finite steps skipped before the run stops"},
    {"train.recompute", K_BOOL, O(recompute), 0, "false", 0, 0,
     "block recompute (gradient checkpointing)"},
    {"train.device", K_STR, O(device), S(device), "\"cpu\"", 0, 0,
     "cpu | cuda (train, eval and generate on GPU 0; needs a -DEMOTUNE_CUDA=ON build)"},
    {"train.threads", K_INT, O(threads), 0, "0", 0, 4096, "CPU threads (0 = all cores)"},
    {"train.tensorboard", K_BOOL, O(tensorboard), 0, "true", 0, 0, "write TensorBoard event files"},
    {"eval.batch_size", K_INT, O(eval_batch_size), 0, "16", 1, 1 << 20, "generation batch"},
    {"eval.max_new_tokens", K_INT, O(eval_max_new_tokens), 0, "32", 1, 1 << 20,
     "tokens generated per answer"},
    {"eval.do_sample", K_BOOL, O(eval_do_sample), 0, "false", 0, 0, "sample (else greedy)"},
    {"eval.temperature", K_F64, O(eval_temperature), 0, "1.0", 1e-6, 100, "sampling temperature"},
    {"eval.top_p", K_F64, O(eval_top_p), 0, "1.0", 1e-6, 1, "nucleus sampling"},
    {"eval.kind", K_STR, O(eval_kind), S(eval_kind), "\"emotion\"", 0, 0,
     "emotion | au (which metrics)"},
    {"eval.answer_parse", K_STR, O(eval_answer_parse), S(eval_answer_parse), "\"emola\"", 0, 0,
     "emola (EmoLA's free-text rules) | name (the answer is a class name)"},
    {"eval.prompt", K_STR, O(eval_prompt), S(eval_prompt), "\"\"", 0, 0,
     "question for samples without conversations (default by eval.kind: EmoLA's prompts)"},
    {"eval.max_samples", K_INT, O(eval_max_samples), 0, "0", 0, 1 << 30,
     "evaluate the first N samples (0 = all)"},
    {"eval.template", K_STR, O(eval_template), S(eval_template), "\"\"", 0, 0,
     "template of the evaluation prompts (\"\" = data.template; EmoLA evaluates with llava_v1)"},
    {"eval.output_dir", K_STR, O(eval_output_dir), S(eval_output_dir), "\"\"", 0, 0,
     "predictions and metrics (default: <train.output_dir>/eval)"},
};
#define N_ENTRIES ((int)(sizeof table / sizeof table[0]))

static const char *const sections[] = {
    "model", "lora", "data", "synth", "clip", "face", "fim", "attribute_prompt", "train", "eval"};

static const entry_t *find_entry(const char *key) {
    for (int i = 0; i < N_ENTRIES; i++)
        if (!strcmp(table[i].key, key)) return &table[i];
    return NULL;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

// How far a typed key is from a known "section.name": section and name are compared apart
// (trian.lr is 2 edits from train.lr, not a near miss of data.train); a name that exists
// verbatim in another section costs 1 (model.lr -> train.lr); a typed key without a section
// is compared with the names alone (lr -> train.lr).
static int key_distance(const char *typed, const char *known) {
    const char *kdot = strchr(known, '.');
    char ksec[32];
    snprintf(ksec, sizeof ksec, "%.*s", (int)(kdot - known), known);
    const char *tdot = strchr(typed, '.');
    if (!tdot) return edit_distance(typed, kdot + 1) + (strcmp(typed, kdot + 1) ? 1 : 0);
    char tsec[64];
    snprintf(tsec, sizeof tsec, "%.*s", (int)(tdot - typed), typed);
    int d = edit_distance(tsec, ksec) + edit_distance(tdot + 1, kdot + 1);
    if (!strcmp(tdot + 1, kdot + 1) && d > 1) d = 1;
    return d;
}

// where: the config file's name, or "command line" for a key typed there.
static et_status unknown_key(const char *where, const char *key) {
    const char *best = NULL;
    int bd = 1 << 30;
    for (int i = 0; i < N_ENTRIES; i++) {
        int d = key_distance(key, table[i].key);
        if (d < bd) bd = d, best = table[i].key;
    }
    // a typed section alone ("trian": {...} in a file): the nearest section
    const char *best_sec = NULL;
    int bs = 1 << 30;
    if (!strchr(key, '.'))
        for (size_t k = 0; k < sizeof sections / sizeof *sections; k++) {
            int d = edit_distance(key, sections[k]);
            if (d < bs) bs = d, best_sec = sections[k];
        }
    const int len = (int)strlen(key);
    const int limit = len < 6 ? 2 : 3;
    if (best_sec && bs <= 2 && bs < bd)
        return et_err(ET_ERR_INVALID, "%s: unknown section \"%s\" (did you mean \"%s\"?)", where,
                      key, best_sec);
    if (best && bd <= limit)
        return et_err(ET_ERR_INVALID, "%s: unknown key \"%s\" (did you mean \"%s\"?)", where, key,
                      best);
    return et_err(ET_ERR_INVALID, "%s: unknown key \"%s\" (`emotune train --help` lists the keys)",
                  where, key);
}

// Prints a number the way a user typed it: integers as integers (1048576, not 1.04858e+06),
// other values with the fewest digits that read back as the same double.
static const char *fmt_num(double v, char *buf, size_t n) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e18) {
        snprintf(buf, n, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

// String keys with a closed set of values ('|'-separated; an empty choice accepts "").
static const struct {
    const char *key, *choices;
} enums[] = {
    {"model.projector", "linear|mlp2x_gelu"},
    {"model.select_feature", "patch|cls_patch"},
    {"model.face_prior", "none|landmark|fim|face_info_mining|landmark+fim|fim+landmark"},
    {"fim.landmarks", "network|dataset"},
    {"model.weight_dtype", "f32|bf16"},
    {"data.template", "vicuna_v1|llava_v1|llava_llama_2|llama_3|plain"},
    {"data.image_aspect_ratio", "pad|square"},
    {"data.supervise", "answers|all"},
    {"synth.caption_style", "short|prose"},
    {"attribute_prompt.source", "dataset|network"},
    {"attribute_prompt.position", "prefix|suffix"},
    {"train.lr_scheduler", "constant|constant_with_warmup|linear|cosine"},
    {"train.device", "cpu|cuda"},
    {"eval.kind", "emotion|au"},
    {"eval.answer_parse", "emola|name"},
    {"eval.template", "|vicuna_v1|llava_v1|llava_llama_2|llama_3|plain"},
};

static const char *choices_of(const char *key) {
    for (size_t i = 0; i < sizeof enums / sizeof enums[0]; i++)
        if (!strcmp(enums[i].key, key)) return enums[i].choices;
    return NULL;
}

// Whether s is one of the '|'-separated choices (an empty choice accepts "").
static bool is_choice(const char *choices, const char *s) {
    size_t n = strlen(s);
    for (const char *c = choices;; c++) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && !strncmp(c, s, n)) return true;
        if (!bar) return false;
        c = bar;
    }
}

// Stores v into c per e. where: file name for messages.
static et_status set_value(et_run_config *c, const entry_t *e, const cJSON *v, const char *where) {
    char *p = (char *)c + e->off;
    switch (e->kind) {
        case K_INT:
        case K_I64:
        case K_F64: {
            if (!cJSON_IsNumber(v))
                return et_err(ET_ERR_INVALID, "%s: %s must be a number, got %s", where, e->key,
                              type_name(v));
            double d = v->valuedouble;
            char bv[40], blo[40], bhi[40];
            if (e->kind != K_F64 && d != floor(d))
                return et_err(ET_ERR_INVALID, "%s: %s must be an integer, got %s", where, e->key,
                              fmt_num(d, bv, sizeof bv));
            if (!(d >= e->lo && d <= e->hi))
                return et_err(ET_ERR_INVALID, "%s: %s = %s is out of range [%s, %s]", where, e->key,
                              fmt_num(d, bv, sizeof bv), fmt_num(e->lo, blo, sizeof blo),
                              fmt_num(e->hi, bhi, sizeof bhi));
            if (e->kind == K_INT)
                *(int *)p = (int)d;
            else if (e->kind == K_I64)
                *(int64_t *)p = (int64_t)d;
            else
                *(double *)p = d;
            return NULL;
        }
        case K_BOOL:
            if (!cJSON_IsBool(v))
                return et_err(ET_ERR_INVALID, "%s: %s must be true or false, got %s", where, e->key,
                              type_name(v));
            *(bool *)p = cJSON_IsTrue(v);
            return NULL;
        case K_STR:
            if (!cJSON_IsString(v))
                return et_err(ET_ERR_INVALID, "%s: %s must be a string, got %s", where, e->key,
                              type_name(v));
            if (strlen(v->valuestring) >= e->size)
                return et_err(ET_ERR_INVALID, "%s: %s is longer than %zu bytes", where, e->key,
                              e->size - 1);
            const char *choices = choices_of(e->key);
            if (choices && !is_choice(choices, v->valuestring))
                return et_err(ET_ERR_INVALID, "%s: %s = \"%s\" is not one of %s", where, e->key,
                              v->valuestring, choices);
            memcpy(p, v->valuestring, strlen(v->valuestring) + 1);
            return NULL;
        case K_STRLIST: {
            if (!cJSON_IsArray(v))
                return et_err(ET_ERR_INVALID, "%s: %s must be an array of strings, got %s", where,
                              e->key, type_name(v));
            int n = cJSON_GetArraySize(v);
            if (n > ET_RC_MAX_TARGETS)
                return et_err(ET_ERR_INVALID, "%s: %s has %d entries (at most %d)", where, e->key,
                              n, ET_RC_MAX_TARGETS);
            for (int i = 0; i < n; i++) {
                const cJSON *s = cJSON_GetArrayItem(v, i);
                if (!cJSON_IsString(s) || strlen(s->valuestring) >= 64)
                    return et_err(ET_ERR_INVALID, "%s: %s[%d] must be a string of < 64 bytes",
                                  where, e->key, i);
            }
            char(*list)[64] = (char(*)[64])p;  // K_STRLIST: char [ET_RC_MAX_TARGETS][64]
            for (int i = 0; i < n; i++)
                snprintf(list[i], 64, "%s", cJSON_GetArrayItem(v, i)->valuestring);
            *(int *)((char *)c + e->size) = n;  // size: the offset of the count
            return NULL;
        }
        case K_JSON: {
            char **sp = (char **)p;
            free(*sp);
            *sp = NULL;
            if (cJSON_IsNull(v)) return NULL;
            if (!cJSON_IsObject(v))
                return et_err(ET_ERR_INVALID, "%s: %s must be an object (HF config fields), got %s",
                              where, e->key, type_name(v));
            *sp = cJSON_PrintUnformatted(v);
            return NULL;
        }
    }
    return NULL;
}

void et_run_config_default(et_run_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_ENTRIES; i++) {
        cJSON *v = cJSON_Parse(table[i].dflt);
        et_status st = set_value(c, &table[i], v, "defaults");
        ET_ASSERT(!st, "bad default for %s", table[i].key);
        cJSON_Delete(v);
    }
}

void et_run_config_free(et_run_config *c) {
    free(c->llm_json), free(c->vision_json), free(c->face_net_json);
    c->llm_json = c->vision_json = c->face_net_json = NULL;
}

// 1-based line and column of byte offset `at` in text.
static void line_col(const char *text, size_t at, int *line, int *col) {
    *line = 1, *col = 1;
    for (size_t i = 0; i < at && text[i]; i++) {
        if (text[i] == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

// Applies one "a.b.c=value" override to the tree root.
static et_status apply_override(cJSON *root, const char *ov) {
    const char *eq = strchr(ov, '=');
    if (!eq || eq == ov)
        return et_err(ET_ERR_INVALID, "command line: override \"%s\" is not key=value", ov);
    char key[256];
    size_t kl = (size_t)(eq - ov);
    if (kl >= sizeof key) return et_err(ET_ERR_INVALID, "command line: key too long in \"%s\"", ov);
    memcpy(key, ov, kl), key[kl] = 0;
    const char *val = eq + 1;
    cJSON *v = cJSON_Parse(val);
    if (!v) v = cJSON_CreateString(val);
    // walk / create objects along the dotted path
    cJSON *obj = root;
    char *save = NULL, *part = strtok_r(key, ".", &save);
    while (part) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            cJSON_DeleteItemFromObjectCaseSensitive(obj, part);
            cJSON_AddItemToObject(obj, part, v);
            return NULL;
        }
        cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, part);
        if (!child || cJSON_IsNull(child)) {
            if (child) cJSON_DeleteItemFromObjectCaseSensitive(obj, part);
            child = cJSON_AddObjectToObject(obj, part);
        } else if (!cJSON_IsObject(child)) {
            cJSON_Delete(v);
            return et_err(ET_ERR_INVALID, "command line: \"%.*s\" is not an object in \"%s\"",
                          (int)kl, ov, ov);
        }
        obj = child;
        part = next;
    }
    cJSON_Delete(v);
    return et_err(ET_ERR_INVALID, "command line: empty key in \"%s\"", ov);
}

// Keys whose relative values in a config file name inputs that sit beside the config: they
// resolve against the file's directory. Outputs (train.output_dir, eval.output_dir) and every
// value typed on the command line stay relative to the working directory.
static const char *const input_paths[] = {
    "model.llm_path",       "model.vision_path",  "model.llava_path",
    "model.tokenizer",      "data.train",         "data.eval",
    "data.store",           "data.root",          "synth.dir",
    "model.projector_path", "model.face_net_path"};

static bool is_input_path(const char *key) {
    for (size_t i = 0; i < sizeof input_paths / sizeof *input_paths; i++)
        if (!strcmp(input_paths[i], key)) return true;
    return false;
}

// Whether an override sets sec (name == NULL) or sec.name, or something inside it.
static bool from_cli(int n_over, const char *const *ov, const char *sec, const char *name) {
    const size_t ls = strlen(sec), ln = name ? strlen(name) : 0;
    for (int i = 0; i < n_over; i++) {
        const char *o = ov[i];
        if (strncmp(o, sec, ls)) continue;
        if (!name) {
            if (o[ls] == '=' || o[ls] == '.') return true;
            continue;
        }
        if (o[ls] == '.' && !strncmp(o + ls + 1, name, ln) &&
            (o[ls + 1 + ln] == '=' || o[ls + 1 + ln] == '.'))
            return true;
    }
    return false;
}

// base_dir/value into the string field of e (when value is relative and base_dir is set).
static et_status resolve_path(et_run_config *c, const entry_t *e, const char *base_dir,
                              const char *where) {
    char *p = (char *)c + e->off;
    if (!base_dir || !p[0] || p[0] == '/') return NULL;
    const char *rel = p;
    // base_dir is canonical (realpath), so a leading "../" is its parent, exactly
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s", base_dir);
    for (;;) {
        if (rel[0] == '.' && rel[1] == '/') {
            rel += 2;
        } else if (rel[0] == '.' && rel[1] == '.' && (rel[2] == '/' || !rel[2])) {
            char *slash = strrchr(base, '/');
            if (slash && slash != base)
                *slash = 0;
            else
                snprintf(base, sizeof base, "/");
            rel += rel[2] ? 3 : 2;
        } else {
            break;
        }
    }
    char buf[PATH_MAX + ET_RC_PATH + 8];
    int n = rel[0] ? snprintf(buf, sizeof buf, "%s%s%s", base, strcmp(base, "/") ? "/" : "", rel)
                   : snprintf(buf, sizeof buf, "%s", base);
    if (n < 0 || (size_t)n >= e->size)
        return et_err(ET_ERR_INVALID,
                      "%s: %s = \"%s\" resolved against %s is longer than %zu bytes", where, e->key,
                      p, base_dir, e->size - 1);
    memcpy(p, buf, (size_t)n + 1);
    return NULL;
}

// The vision tower's depth, when model.vision names it, bounds model.select_layer: the tower
// has L + 1 hidden states (embeddings, then each layer), so k must lie in [-(L + 1), L].
// (A tower loaded from model.vision_path / model.llava_path is checked when it is built.)
static et_status check_select_layer(const et_run_config *c, const char *where) {
    if (!c->vision_json || c->vision_path[0] || c->llava_path[0]) return NULL;
    cJSON *v = cJSON_Parse(c->vision_json);
    const cJSON *nl = cJSON_GetObjectItemCaseSensitive(v, "num_hidden_layers");
    et_status st = NULL;
    if (cJSON_IsNumber(nl) && nl->valuedouble >= 1 && nl->valuedouble <= 4096) {
        const int L = (int)nl->valuedouble;
        if (c->select_layer < -(L + 1) || c->select_layer > L)
            st = et_err(ET_ERR_INVALID,
                        "%s: model.select_layer = %d is out of range for the %d-layer vision tower "
                        "(model.vision.num_hidden_layers = %d): use %d..%d (-2, LLaVA's choice, "
                        "is the penultimate layer)",
                        where, c->select_layer, L, L, -(L + 1), L);
    }
    cJSON_Delete(v);
    return st;
}

static et_status parse_at(const char *json, const char *name, const char *base_dir, int n_over,
                          const char *const *overrides, et_run_config *out) {
    et_run_config_default(out);
    cJSON *root = json ? cJSON_ParseWithOpts(json, NULL, true) : cJSON_CreateObject();
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 0, col = 0;
        if (at && at >= json) line_col(json, (size_t)(at - json), &line, &col);
        if (at && at >= json && et_json_too_deep(json, (size_t)(at - json) + 1))
            return et_err(ET_ERR_FORMAT,
                          "%s: JSON nesting deeper than %d levels at line %d, column %d", name,
                          ET_JSON_MAX_DEPTH, line, col);
        return et_err(ET_ERR_FORMAT, "%s: JSON syntax error at line %d, column %d", name, line,
                      col);
    }
    et_status st = et_json_check_unique(root, name);  // Python would take the last, cJSON the first
    if (!st && !cJSON_IsObject(root))
        st = et_err(ET_ERR_FORMAT, "%s: the config must be a JSON object", name);
    for (int i = 0; !st && i < n_over; i++) st = apply_override(root, overrides[i]);
    for (const cJSON *sec = root->child; !st && sec; sec = sec->next) {
        const char *where = from_cli(n_over, overrides, sec->string, NULL) ? "command line" : name;
        bool known = false;
        for (size_t k = 0; k < sizeof sections / sizeof *sections; k++)
            known = known || !strcmp(sec->string, sections[k]);
        if (!known) {  // name the first key inside, so the suggestion weighs both parts
            char key[256];
            if (cJSON_IsObject(sec) && sec->child)
                snprintf(key, sizeof key, "%s.%s", sec->string, sec->child->string);
            else
                snprintf(key, sizeof key, "%s", sec->string);
            st = unknown_key(where, key);
            break;
        }
        if (!cJSON_IsObject(sec)) {
            st = et_err(ET_ERR_INVALID, "%s: section \"%s\" must be an object", where, sec->string);
            break;
        }
        for (const cJSON *v = sec->child; !st && v; v = v->next) {
            char key[256];
            snprintf(key, sizeof key, "%s.%s", sec->string, v->string);
            const bool cli = from_cli(n_over, overrides, sec->string, v->string);
            const char *w = cli ? "command line" : name;
            const entry_t *e = find_entry(key);
            st = e ? set_value(out, e, v, w) : unknown_key(w, key);
            if (!st && !cli && is_input_path(key)) st = resolve_path(out, e, base_dir, w);
        }
    }
    // the rest (command-line values, defaults) are relative to the working directory:
    // stored absolute too, so a saved config (a checkpoint's) reads back the same anywhere
    char cwd[PATH_MAX];
    if (!st && getcwd(cwd, sizeof cwd))
        for (size_t i = 0; !st && i < sizeof input_paths / sizeof *input_paths; i++)
            st = resolve_path(out, find_entry(input_paths[i]), cwd, "command line");
    if (!st) st = et_attr_prompt_check(out->attr_prompt_template, "attribute_prompt.template");
    if (!st)
        st = check_select_layer(out, from_cli(n_over, overrides, "model", "select_layer") ||
                                             from_cli(n_over, overrides, "model", "vision")
                                         ? "command line"
                                         : name);
    cJSON_Delete(root);
    if (st) et_run_config_free(out);
    return st;
}

et_status et_run_config_parse(const char *json, const char *name, int n_over,
                              const char *const *overrides, et_run_config *out) {
    return parse_at(json, name, NULL, n_over, overrides, out);
}

et_status et_run_config_load(const char *path, int n_over, const char *const *overrides,
                             et_run_config *out) {
    if (!path) return et_run_config_parse(NULL, "config", n_over, overrides, out);
    char *buf = NULL;
    size_t len = 0;
    ET_TRY(et_read_file(path, ET_CONFIG_MAX_BYTES, &buf, &len));
    // the directory of the file, absolute, so resolved paths stay valid wherever they are read
    char dir[PATH_MAX], real[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    et_status st = NULL;
    if (!realpath(dir, real))
        st = et_err(ET_ERR_IO, "%s: cannot resolve its directory (%s)", path, strerror(errno));
    if (!st) st = parse_at(buf, path, real, n_over, overrides, out);
    free(buf);
    if (!st) snprintf(out->source, sizeof out->source, "%s", path);
    return st;
}

static cJSON *value_json(const et_run_config *c, const entry_t *e) {
    const char *p = (const char *)c + e->off;
    switch (e->kind) {
        case K_INT:
            return cJSON_CreateNumber(*(const int *)p);
        case K_I64:
            return cJSON_CreateNumber((double)*(const int64_t *)p);
        case K_F64:
            return cJSON_CreateNumber(*(const double *)p);
        case K_BOOL:
            return cJSON_CreateBool(*(const bool *)p);
        case K_STR:
            return cJSON_CreateString(p);
        case K_STRLIST: {
            cJSON *a = cJSON_CreateArray();
            const char(*list)[64] = (const char(*)[64])p;
            const int n = *(const int *)((const char *)c + e->size);
            for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(list[i]));
            return a;
        }
        case K_JSON: {
            const char *s = *(char *const *)p;
            cJSON *v = s ? cJSON_Parse(s) : NULL;
            return v ? v : cJSON_CreateNull();
        }
    }
    return cJSON_CreateNull();
}

char *et_run_config_to_json(const et_run_config *c) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < N_ENTRIES; i++) {
        char sec[32];
        const char *dot = strchr(table[i].key, '.');
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - table[i].key), table[i].key);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(root, sec);
        if (!s) s = cJSON_AddObjectToObject(root, sec);
        cJSON_AddItemToObject(s, dot + 1, value_json(c, &table[i]));
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
}

et_status et_run_config_save(const et_run_config *c, const char *path) {
    char *text = et_run_config_to_json(c);
    et_status st = et_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

typedef struct {
    const char *key, *value;
    bool dir;  // must be a directory (else a file)
} path_req;

et_status et_run_config_check_paths(const et_run_config *c, unsigned need) {
    path_req req[16];
    int n = 0;
    if (need & ET_RC_NEED_MODEL) {
        req[n++] = (path_req){"model.llava_path", c->llava_path, true};
        req[n++] = (path_req){"model.llm_path", c->llm_path, true};
        req[n++] = (path_req){"model.vision_path", c->vision_path, true};
        req[n++] = (path_req){"model.tokenizer", c->tokenizer, false};
        req[n++] = (path_req){"model.projector_path", c->projector_path, false};
        req[n++] = (path_req){"model.face_net_path", c->face_net_path, true};
    }
    if (need & ET_RC_NEED_TRAIN_DATA) {
        if (c->store[0])
            req[n++] = (path_req){"data.store", c->store, false};
        else
            req[n++] = (path_req){"data.train", c->train_data, false};
    }
    if (need & ET_RC_NEED_EVAL_DATA) req[n++] = (path_req){"data.eval", c->eval_data, false};
    if (need & (ET_RC_NEED_TRAIN_DATA | ET_RC_NEED_EVAL_DATA))
        req[n++] = (path_req){"data.root", c->data_root, true};
    char msg[8192];
    size_t used = 0;
    int bad = 0;
    const char *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!req[i].value[0]) continue;
        struct stat sb;
        const char *why = NULL;
        bool missing = false;
        if (stat(req[i].value, &sb))
            why = strerror(errno), missing = errno == ENOENT;
        else if (req[i].dir && !S_ISDIR(sb.st_mode))
            why = "not a directory";
        else if (!req[i].dir && S_ISDIR(sb.st_mode))
            why = "a directory, not a file";
        if (!why) continue;
        if (!first) first = req[i].key;
        bad++;
        // a missing stage-1 projector: say how it is made
        const bool stage1 = missing && !strcmp(req[i].key, "model.projector_path");
        int k = snprintf(msg + used, sizeof msg - used, "\n  %-18s = %s: %s%s", req[i].key,
                         req[i].value, why,
                         stage1 ? "\n  (model.projector_path is a stage-1 output: run stage 1 "
                                  "first, e.g. `emotune train -c configs/tiny-emola-stage1.json` "
                                  "for configs/tiny-emola.json, as tools/demo.sh does)"
                                : "");
        if (k > 0) used += (size_t)k < sizeof msg - used ? (size_t)k : sizeof msg - used - 1;
    }
    if (!bad) return NULL;
    const char *src = c->source[0] ? c->source : "the config";
    return et_err(ET_ERR_MISSING,
                  "%s: %d input %s cannot be used:%s\n"
                  "fix %s in %s or override %s on the command line (e.g. %s=PATH)",
                  c->source[0] ? c->source : "config", bad, bad == 1 ? "path" : "paths", msg,
                  bad == 1 ? "it" : "them", src, bad == 1 ? "it" : "them", first);
}

void et_run_config_help(FILE *f) {
    fprintf(f, "Config keys (set in the JSON file or as key=value arguments):\n");
    for (int i = 0; i < N_ENTRIES; i++)
        fprintf(f, "  %-32s %-14s %s\n", table[i].key, table[i].dflt, table[i].help);
}

bool et_run_config_attr_prompt(const et_run_config *c, struct et_attr_prompt *out) {
    if (!c->attr_prompt_enabled) return false;
    out->tmpl = c->attr_prompt_template;
    out->position = !strcmp(c->attr_prompt_position, "suffix") ? ET_ATTR_SUFFIX : ET_ATTR_PREFIX;
    return true;
}
