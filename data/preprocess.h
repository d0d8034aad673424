// data/preprocess.h - CLIP image preprocessing (HF CLIPImageProcessor + LLaVA "pad").
// defines: et_clip_preproc, ET_CLIP_MEAN_*, et_clip_preproc_default, et_clip_preprocess,
//          et_clip_preprocess_file,
//          et_preproc_simd, et_preproc_simd_best, et_preproc_simd_name,
//          et_clip_preprocess_simd, et_clip_resize_size, et_image_resize_bicubic,
//          et_image_expand2square, et_image_center_crop, et_clip_normalize
//
// Contract (REFERENCE.md section 4)
// - et_clip_preprocess(img) reproduces, for an RGB et_image decoded as in data/image.h,
//   LLaVA's  [expand2square(img, (122, 116, 104)) if pad_square]  followed by
//   CLIPImageProcessor(size={"shortest_edge": resize_shortest},
//                      crop_size={"height": crop, "width": crop}).preprocess(img):
//   1. resize so the shortest edge is resize_shortest; the other edge is
//      int(resize_shortest * long / short) (HF get_resize_output_image_size), with
//      Pillow's antialiased bicubic (et_image_resize_bicubic);
//   2. center crop crop x crop: top = (H - crop) // 2, left = (W - crop) // 2 (floor
//      division), zero padding where the image is smaller (HF center_crop);
//   3. rescale: float32(v * (1.0 / 255)) computed in double, as HF (float64 then astype);
//   4. normalize in float32: (x - mean) / std, per channel; output CHW.
//   Outputs: *u8_hwc, the u8 [crop, crop, 3] image after step 2 (what the HDF5 store keeps;
//   steps 3-4 are a pure per-value function of it), and *f32_chw, the ET_F32 [3, crop, crop]
//   pixel_values. Either pointer may be NULL when that output is not wanted. New tensor
//   references (et_release them).
// - et_image_resize_bicubic is Pillow's Image.resize(size, BICUBIC) for RGB images
//   (reducing_gap None): separable, horizontal pass first into a u8 intermediate, then the
//   vertical pass; cubic kernel a = -0.5 with support 2 scaled by the downscale factor
//   (antialiasing); coefficients normalised to sum 1 in double, then 22-bit fixed point
//   with round-half-away; accumulators start at 1 << 21 and are clipped to 0..255. Same
//   output pixels as Pillow, bit for bit.
// - The pad square is never materialised: the resampler reads background where the square
//   has no image (same pixels as Pillow on the real square, exactly), so padding a very
//   elongated image costs memory and time linear in the image, not in the square.
// - Only what the crop keeps is computed (the resized columns and rows inside the crop and
//   the input rows they read), in one pass per dimension into planar u8 and straight into
//   the f32 planes; same pixels as resizing everything and cropping. Working memory: the
//   intermediate rows (crop width x input rows read, 3 bytes each) and the coefficient
//   tables, plus buffers for 64 image rows at a time.
// - Code paths (et_preproc_simd): portable C, AVX2, AVX-512 (F + BW), chosen at run time from the
//   CPU (the build targets x86-64-v2). Every path gives the same bytes and floats.
//   et_clip_preprocess_simd forces one (tests, benches); a path the CPU lacks returns
//   ET_ERR_UNSUPPORTED.
// - Thread-safe: no shared state (the CPU check is cached in an atomic).
// - Config errors (sizes <= 0 or > 8192, std == 0), a resize whose long side would exceed
//   8192 (aspect ratio beyond 1:24 at 336) and a pad square wider than 65536 return
//   ET_ERR_INVALID; out-of-memory returns ET_ERR_NOMEM. Inputs are never modified.
#ifndef ET_PREPROCESS_H
#define ET_PREPROCESS_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/status.h"
#include "../core/tensor.h"
#include "image.h"

// OpenAI CLIP normalisation constants (CLIPImageProcessor defaults).
#define ET_CLIP_MEAN_R 0.48145466f
#define ET_CLIP_MEAN_G 0.4578275f
#define ET_CLIP_MEAN_B 0.40821073f
#define ET_CLIP_STD_R 0.26862954f
#define ET_CLIP_STD_G 0.26130258f
#define ET_CLIP_STD_B 0.27577711f

typedef struct et_clip_preproc {
    int resize_shortest;  // size["shortest_edge"] (336 for ViT-L/14-336, 224 for ViT-L/14)
    int crop;             // crop_size height = width
    bool pad_square;      // LLaVA image_aspect_ratio == "pad": expand2square first
    uint8_t pad_rgb[3];   // the square's background: int(mean * 255) = (122, 116, 104)
    float mean[3], std[3];
} et_clip_preproc;

// CLIP defaults for input size `size` (resize and crop both `size`), pad_square off.
void et_clip_preproc_default(et_clip_preproc *p, int size);

et_status et_clip_preprocess(const et_image *img, const et_clip_preproc *p, et_tensor **u8_hwc,
                             et_tensor **f32_chw);
// The image file at path decoded (et_image_decode_file, default options) and preprocessed to
// f32 [3, crop, crop] in *f32_chw.
et_status et_clip_preprocess_file(const char *path, const et_clip_preproc *p, et_tensor **f32_chw);

typedef enum {
    ET_PREPROC_AUTO = 0,  // the best the CPU has
    ET_PREPROC_PORTABLE,
    ET_PREPROC_AVX2,
    ET_PREPROC_AVX512,  // AVX-512F + AVX-512BW
} et_preproc_simd;

et_preproc_simd et_preproc_simd_best(void);         // never ET_PREPROC_AUTO
const char *et_preproc_simd_name(et_preproc_simd);  // "portable", "avx2", ...
// et_clip_preprocess on a chosen code path.
et_status et_clip_preprocess_simd(const et_image *img, const et_clip_preproc *p,
                                  et_preproc_simd simd, et_tensor **u8_hwc, et_tensor **f32_chw);

// HF get_resize_output_image_size(default_to_square=False) for shortest_edge = shortest.
void et_clip_resize_size(int width, int height, int shortest, int *out_w, int *out_h);
// Pillow's antialiased bicubic resize to out_w x out_h (see the contract above).
et_status et_image_resize_bicubic(const et_image *in, int out_w, int out_h, et_image *out);
// LLaVA expand2square: a max(w, h) square filled with bg, the image pasted at
// ((max - w) // 2, (max - h) // 2). A square input is copied unchanged.
et_status et_image_expand2square(const et_image *in, const uint8_t bg[3], et_image *out);
// HF center_crop to crop_w x crop_h (zero padding where the image is smaller).
et_status et_image_center_crop(const et_image *in, int crop_w, int crop_h, et_image *out);
// Steps 3-4 on an h x w RGB HWC u8 image into CHW float32 (3 * h * w floats).
void et_clip_normalize(const uint8_t *hwc, int h, int w, const float mean[3], const float std[3],
                       float *chw);

#endif
