// train/io/llava_load.h - a whole LLaVA checkpoint directory (decoder + projector + tower).
// defines: et_llava, et_llava_load, et_llava_free
//
// Contract
// - The layout is detected from dir/config.json (et_llava_config_parse):
//   LLaVA-1.5 (liuhaotian): LLaMA fields at the top level plus mm_*; tensors
//     model.embed_tokens / model.layers.* / model.norm / lm_head (decoder),
//     model.mm_projector.* (projector), and optionally
//     model.vision_tower.vision_tower.vision_model.* (tower).
//   llava-hf: text_config (LLaMA fields, LlamaConfig defaults for absent ones) and
//     vision_config; tensors language_model.model.* / language_model.lm_head.weight,
//     multi_modal_projector.linear_{1,2}.*, vision_tower.vision_model.*.
//   The weights are model.safetensors or a sharded model.safetensors.index.json.
// - The tower comes from the checkpoint when it holds tensors under the tower's prefix,
//   else from vision_dir (a CLIP directory, e.g. the one mm_vision_tower names). Its config
//   is vision_dir/config.json when vision_dir is given, else llava-hf's vision_config; a
//   LLaVA-1.5 checkpoint that holds the tower but has no vision_dir is an error.
//   Neither the tower's tensors nor vision_dir: an error naming mm_vision_tower.
// - Every part is matched before anything is kept: ONE error (prefixed "<dir>: LLaVA
//   checkpoint") carries the decoder's, the projector's and the tower's problems (missing,
//   mis-shaped, unexpected tensors); a tensor outside the three parts is unexpected.
// - The decoder weights take weight_dtype (f32/bf16/f16); the projector is f32 and
//   trainable; the tower keeps its file dtype and is frozen. mllm borrows the three parts
//   held in the same struct and is ready for et_mllm_forward (max_len 0: no truncation).
#ifndef ET_TRAIN_LLAVA_LOAD_H
#define ET_TRAIN_LLAVA_LOAD_H

#include "core/status.h"
#include "core/tensor.h"
#include "train/models/clip.h"
#include "train/models/llama.h"
#include "train/models/mllm.h"
#include "train/models/projector.h"

typedef struct {
    et_llava_config cfg;
    et_clip_vision vision;
    et_projector proj;
    et_llama *llm;
    et_mllm mllm;  // points at vision, proj and llm above
} et_llava;

et_status et_llava_load(const char *dir, const char *vision_dir, et_dtype weight_dtype,
                        et_llava **out);
void et_llava_free(et_llava *m);  // NULL-safe; frees the parts and the struct

#endif
