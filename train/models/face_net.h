// train/models/face_net.h - the face analysis network (FaceXFormer's architecture, REFERENCE.md
// "FaceXFormer"): a Swin encoder, the multi-scale fusion to one map, SAM's two-way transformer
// decoder over task tokens, and heads for 68 landmarks, age, gender and race.
// defines: et_face_net_config, et_face_net, et_face_net_out, et_face_net_config_from_json,
//          et_face_net_config_load, et_face_net_new_random, et_face_net_catalogue,
//          et_face_net_slot,
//          et_face_net_forward, et_face_net_out_free, et_face_net_free, et_face_net_params,
//          et_face_net_config_to_json, et_face_net_save, et_face_net_point_pe,
//          ET_FACE_NET_MAX_STAGES, ET_FACE_NET_TOKENS
//
// Contract
// - Config (config.json, "model_type": "facexformer"): image_size, patch_size (4),
//   num_channels (3), embed_dim, depths [n stages], num_heads [n stages], window_size,
//   mlp_ratio, layer_norm_eps (1e-5), fuse_dim, decoder_depth, decoder_heads, decoder_mlp_dim,
//   attention_downsample_rate (2), num_mask_tokens (11), image_mean / image_std (3 numbers each;
//   default CLIP's, what emotune's pipeline and pretrain-face use; FaceXFormer's converted
//   config holds ImageNet's). FaceXFormer itself: 224, 4, 3, 128,
//   [2, 2, 18, 2], [4, 8, 16, 32], 7, 4.0, 1e-5, 256, 2, 8, 2048, 2, 11. Every field is
//   checked (an error names the file and the field).
// - Weights carry FaceXFormer's state-dict names (loaded by train/io/face_net_load.h) (torchvision
// swin_b under "backbone.0.",
//   "linear_c.<i>.proj", "linear_fuse", "pe_layer.positional_encoding_gaussian_matrix",
//   "face_decoder.*"). Loading requires every tensor the outputs below use, with its exact
//   shape, and names the missing, mis-shaped and unexpected ones in one error; tensors of
//   the parts emotune does not run (the backbone's final norm "backbone.1.", the parsing
//   upscaler and hypernetwork, the pose / attribute / visibility heads,
//   relative_position_index buffers, which are recomputed) are ignored.
// - Forward, img [B, C, S, S] (normalised pixels, f32):
//     stage i output (torchvision features[1 + 2 i]): channels-last [B, h_i, w_i, C_i],
//       C_i = embed_dim 2^i, h_0 = S / patch_size, halved (rounded up) per stage;
//       Swin v1 blocks: pre-LN window attention with relative position bias, odd blocks
//       shifted by window/2 (no shift along a padded side not larger than the window), zero
//       padding to whole windows after norm1, the -100 mask across shifted regions; MLP
//       with exact GELU; PatchMerging = cat(x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2],
//       x[1::2, 1::2]) -> LayerNorm(4C) -> Linear(4C, 2C, no bias).
//     fused [B, h_0, w_0, F]: linear_c[i] on each stage, bilinear resize to (h_0, w_0)
//       (align_corners false), concatenated last stage first, then linear_fuse.
//     tokens [B, 18, F]: the decoder's 18 queries (landmarks, pose, attribute, visibility,
//       age, gender, race tokens, then the mask tokens) after norm_final_attn; keys
//       [B, h_0 w_0, F]: its image tokens.
//     landmarks [B, 136] (68 x (x, y), FaceXFormer's [-1, 1] convention), age [B, 8],
//     gender [B, 2], race [B, 5]: 3-layer ReLU MLPs on tokens 0, 4, 5, 6 (logits).
//   With m->frozen (the default after loading) the whole forward runs under no-grad and
//   costs no backward; clear it to train the network.
#ifndef ET_TRAIN_FACE_NET_H
#define ET_TRAIN_FACE_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "nn.h"

#define ET_FACE_NET_MAX_STAGES 4
#define ET_FACE_NET_TOKENS 7  // task tokens before the mask tokens

typedef struct {
    int64_t image_size, patch_size, num_channels, embed_dim;
    int n_stages;
    int64_t depths[ET_FACE_NET_MAX_STAGES], heads[ET_FACE_NET_MAX_STAGES];
    int64_t window;
    double mlp_ratio, eps;
    int64_t fuse_dim, dec_depth, dec_heads, dec_mlp, attn_down, n_mask_tokens;
    float image_mean[3], image_std[3];  // the pixel normalisation it was trained with
} et_face_net_config;

typedef struct {
    et_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    et_tensor *rel_table;  // [(2 win - 1)^2, heads]
    et_linear_layer qkv, proj, fc1, fc2;
} et_swin_block;

typedef struct {
    et_linear_layer q, k, v, o;
} et_face_attn;

typedef struct {
    et_face_attn self_attn, t2i, i2t;
    et_tensor *ln_w[4], *ln_b[4];  // norm1..norm4
    et_linear_layer lin1, lin2;    // mlp
} et_twoway_layer;

typedef struct et_face_net {
    et_face_net_config cfg;
    et_tensor *patch_w, *patch_b, *patch_ln_w, *patch_ln_b;
    et_swin_block *blocks[ET_FACE_NET_MAX_STAGES];
    et_tensor *merge_ln_w[ET_FACE_NET_MAX_STAGES], *merge_ln_b[ET_FACE_NET_MAX_STAGES];
    et_linear_layer merge[ET_FACE_NET_MAX_STAGES];  // reduction (no bias), stages 0..n-2
    et_linear_layer linear_c[ET_FACE_NET_MAX_STAGES];
    et_tensor *fuse_w;                        // [F, F n] (the 1x1 conv's [F, F n, 1, 1] viewed)
    et_tensor *pe_gauss;                      // [2, F/2]
    et_tensor *task_tok[ET_FACE_NET_TOKENS];  // [1, F] each
    et_tensor *mask_tok;                      // [n_mask, F]
    et_twoway_layer *dec;                     // [dec_depth]
    et_face_attn final_attn;
    et_tensor *final_ln_w, *final_ln_b;
    et_linear_layer head[4][3];  // landmarks, age, gender, race; 3 layers each
    bool frozen;
    // the parameter catalogue (names, shapes, slots), built with the model
    int n_params;
    struct et_face_param *params;
} et_face_net;

typedef struct {
    et_tensor *stages[ET_FACE_NET_MAX_STAGES];
    et_tensor *fused, *tokens, *keys;
    et_tensor *landmarks, *age, *gender, *race;
} et_face_net_out;

et_status et_face_net_config_from_json(const char *json, const char *what, et_face_net_config *out);
et_status et_face_net_config_load(const char *config_json_path, et_face_net_config *out);
// A network with cfg's shapes, initialised as the PyTorch modules are (Philox at seed): the
// Swin encoder's linears and relative position tables N(0, std) with zero biases
// (torchvision: trunc_normal 0.02); the patch conv, FaceXFormer's fusion, SAM's decoder and
// the heads PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases;
// the tokens (nn.Embedding) and the PE matrix N(0, 1); LayerNorms 1 / 0. f32, trainable
// (frozen false).
et_status et_face_net_new_random(const et_face_net_config *cfg, double std, uint64_t seed,
                                 et_face_net *m);
// The catalogue of cfg's network without tensors (every slot NULL): what a loader fills
// (train/io/face_net_load.h), one slot at a time.
void et_face_net_catalogue(et_face_net *m, const et_face_net_config *cfg);
void et_face_net_slot(et_face_net *m, int i, const char **name, int *ndim, const int64_t **shape,
                      et_tensor ***slot);
// SAM's random-Fourier encoding (the network's pe_gauss, as its image PE and SAM's point
// prompts) of points pts [B, 2 N] ((x, y) pairs in [-1, 1]): [B, N, F] f32 on pts' device,
// no autograd (a constant of the points).
et_tensor *et_face_net_point_pe(const et_face_net *m, et_tensor *pts);
// img [B, C, S, S] -> out (every field a new reference; free with et_face_net_out_free).
void et_face_net_forward(et_face_net *m, et_tensor *img, et_face_net_out *out);
void et_face_net_out_free(et_face_net_out *o);
void et_face_net_free(et_face_net *m);
// The network's tensors with their FaceXFormer names, in catalogue order; returns the count.
// names / tensors may be NULL.
int et_face_net_params(const et_face_net *m, const char **names, et_tensor **tensors);
// config.json text of cfg (caller frees): every field, "model_type": "facexformer".
char *et_face_net_config_to_json(const et_face_net_config *cfg);
// dir/config.json and dir/model.safetensors (FaceXFormer names, f32), each written
// atomically; dir is created. et_face_net_load reads it back.
et_status et_face_net_save(const et_face_net *m, const char *dir);

#endif
