// train/eval/evaluator.h - `emotune eval`: batched KV-cache generation over an evaluation set and
// the papers' metrics (train/eval/metrics.h).
// defines: et_eval_summary, et_eval_run, et_eval_gen_opts, et_eval_answer_text,
//          et_eval_template_name, et_eval_write_tensorboard
//
// Contract
// - The model is built from the run config (train/emo_model.h); its trainables come from
//   `checkpoint` (a step directory, or a run's output_dir: its newest checkpoint) when given,
//   else the newest checkpoint under train.output_dir; none found is an error.
// - Samples: data.eval (LLaVA-format JSON / JSONL). The question is the sample's first human
//   turn; a sample without conversations (EmoLA's eval files: image, label, gpt4) gets
//   eval.prompt, default by eval.kind: "<image>\nWhat emotions are conveyed by this face?" /
//   "<image>\nWhat AUs are conveyed by this face?". The prompt is the template's generation
//   prompt (et_template_prompt) of eval.template (default data.template); images, landmarks and the
//   splice are as in training.
// - Generation: eval.batch_size prompts at once, left-padded, one prompt pass then one token
//   per step with the KV cache; greedy unless eval.do_sample; stops at EOS / the template's
//   stop string or eval.max_new_tokens. The answer is the decoded text without special tokens
//   and without the stop string, stripped.
// - Scoring: label = the sample's "label" (emotion name or id; AU "4, 9, 15"); reference =
//   "gpt4" or the first gpt answer (ROUGE-L). eval.answer_parse: "emola" (EmoLA's rules) or
//   "name" (one class name).
// - Outputs in eval.output_dir (default <train.output_dir>/eval): predictions.jsonl (one line
//   per sample: index, id, label, prediction, parsed class / AUs), metrics.json, and for
//   emotions confusion.png (titled with data.eval's file name and the accuracy).
// - TensorBoard (train.tensorboard, on by default): the metrics also go to the run's tb/
//   directory as scalars at the step of the checkpoint evaluated (et_eval_write_tensorboard),
//   beside the training curves. A failure there is a warning: metrics.json has them.
#ifndef ET_TRAIN_EVALUATOR_H
#define ET_TRAIN_EVALUATOR_H

#include "core/status.h"
#include "data/template.h"
#include "data/tokenizer.h"
#include "metrics.h"
#include "train/models/generate.h"
#include "train/runconfig.h"

typedef struct {
    et_emo_eval_result result;
    int64_t n_skipped;  // samples that could not be loaded or labelled
    double seconds;
    char output_dir[4096];
} et_eval_summary;

et_status et_eval_run(const et_run_config *cfg, const char *checkpoint, et_eval_summary *out);
// Writes r as TensorBoard scalars into a new event file under <run>/tb, where <run> is the
// run holding checkpoint_dir (<run>/checkpoints/step-N), else output_dir, at the checkpoint's
// step (state.json "step", else the N of step-N). Tags, with metrics.json's names and units:
// eval/accuracy, eval/war, eval/uar (emotion; fractions 0..1), eval/f1_mean, eval/au_acc_mean
// (AU), eval/rouge_l (0..1) and eval/rege (0..200) when references were scored, and
// eval/n_samples; undefined (NaN) metrics are left out. tb_dir (cap bytes, may be NULL)
// receives the directory, step_out (may be NULL) the step. Errors: the checkpoint's step
// cannot be told (ET_ERR_FORMAT naming it), the event file cannot be written (ET_ERR_IO).
et_status et_eval_write_tensorboard(const char *checkpoint_dir, const char *output_dir,
                                    const et_emo_eval_result *r, char *tb_dir, size_t cap,
                                    int64_t *step_out);
// The template of evaluation / generation prompts: eval.template, else data.template.
const char *et_eval_template_name(const et_run_config *cfg);
// Decoding options from eval.*: greedy or sampling, stop at the EOS and the template's stop id.
et_gen_opts et_eval_gen_opts(const et_run_config *cfg, const et_template_stop *stop);
// The answer text of n generated ids: without the final EOS / stop ids, special tokens, a
// trailing stop string and surrounding whitespace (malloc'd).
char *et_eval_answer_text(const et_tokenizer *tk, const int32_t *ids, int64_t n,
                          const et_template_stop *stop);

#endif
