// core/optim.h - AdamW with parameter groups, global-norm clipping, LR schedules.
// defines: et_adamw, et_adamw_config, et_param_group, et_adamw_defaults, et_adamw_new,
//          et_adamw_free, et_adamw_add_group, et_adamw_step, et_adamw_num_groups,
//          et_adamw_group_lr, et_adamw_params, et_adamw_state_tensors, et_adamw_get_step,
//          et_adamw_set_step, et_grad_norm, et_clip_grad_norm, et_grads_finite,
//          et_schedule, et_schedule_from_name, et_schedule_name, et_lr_factor,
//          et_warmup_steps
//
// AdamW (torch.optim.AdamW semantics: single-tensor path, amsgrad off, maximize off)
// - For every parameter p with p->grad != NULL, in this order and in p's precision
//   (f32 for f32/bf16/f16 parameters, f64 for f64 ones), with lr = group base lr * factor:
//     p *= 1 - lr * wd                      (decoupled weight decay)
//     m  = lerp(m, g, 1 - b1)               (torch's lerp: m + (1-b1) (g - m))
//     v  = v * b2;  v = v + ((1 - b2) g) g
//     t  = per-parameter step count after increment
//     step_size = lr / (1 - b1^t);  bc2 = sqrt(1 - b2^t)         (in double)
//     p  = p + (-step_size m) / (sqrt(v) / bc2 + eps)
//   Scalars are computed in double and rounded to the parameter precision before they
//   meet the tensors, as torch does on the CPU. Parameters with a NULL grad are skipped
//   and their step count does not advance (like PyTorch's per-parameter state['step']).
// - bf16/f16 parameters: the optimizer owns an f32 master copy. It is taken from the
//   parameter at the parameter's first step (so weights loaded after et_adamw_add_group
//   are picked up), the update runs on the master, and the result is rounded (nearest
//   even) into the parameter. Their grads must be f32 (core/autograd.c keeps them so).
// - State is allocated eagerly in et_adamw_add_group: exp_avg / exp_avg_sq in f32 (f64 for
//   f64 parameters), master (half parameters only) and a per-parameter step counter.
// - Ownership: the optimizer retains every parameter it was given and releases them in
//   et_adamw_free. It never touches p->grad except to read it.
// - Devices: parameters may live on the CPU or on a device with a backend (core/device.h;
//   f64 is CPU only). State tensors (m, v, master) live with their parameter; the step
//   counters stay on the CPU. CPU parameters are updated here (OpenMP over elements of
//   large parameters); the device parameters of a step are collected per device and
//   updated by one multi-tensor AdamW call of the backend (the CUDA library: a fused kernel,
//   several parameters per launch, same arithmetic as here). A grad must live on its
//   parameter's device.
//
// Parameter groups
// - Each group has a base lr (absolute, or lr_mult times the optimizer's lr) and a
//   weight decay; betas and eps are shared. et_adamw_step(opt, factor) uses
//   base_lr * factor for every group, factor being the schedule's et_lr_factor.
//
// Checkpoint hooks
// - et_adamw_state_tensors lists the live state tensors with stable names:
//     "<group>.<param>.exp_avg", "<group>.<param>.exp_avg_sq", "<group>.<param>.step"
//     (f64 [], the per-parameter step count) and "<group>.<param>.master" (half params)
//   where <group> is the group's name (default "group<k>") and <param> the parameter's
//   name (default its index in the group). To save: write them as they are. To restore:
//   build the optimizer with the same groups, then copy the saved values into these very
//   tensors (et_copy_), restore the parameters themselves, and et_adamw_set_step.
//   Continuation is then bit-identical. State of device parameters lives on the device:
//   copy it to host tensors (et_to_device(t, et_cpu())) before writing safetensors.
//
// Clipping (torch.nn.utils.clip_grad_norm_, norm_type 2)
// - total = sqrt(sum over params with grad of sum g^2), accumulated in f64 over fixed
//   chunks (deterministic for any thread count). coef = max_norm / (total + 1e-6) (in f32
//   for f32 grads, as torch computes it); grads are multiplied by coef only if coef < 1.
//   Returns the pre-clip total. A non-finite total leaves the grads untouched: check it
//   (or et_grads_finite) and skip the step.
// - Device grads (f32): each device's grads are reduced by the backend in one call (f64,
//   fixed order, deterministic; one host synchronisation per device, none per tensor) and
//   scaled by one multi-tensor call. et_grads_finite uses the same reduction (its sum is
//   finite exactly when every element is).
//
// Schedules (HF transformers get_*_schedule_with_warmup; LambdaLR semantics)
// - The lr of optimizer step k (0-based) is base_lr * et_lr_factor(kind, k, total, warmup).
//   warmup:  k < warmup -> k / max(1, warmup)
//   constant_with_warmup: 1;   constant: always 1 (no warmup, like get_constant_schedule)
//   linear:  max(0, (total - k) / max(1, total - warmup))
//   cosine:  p = (k - warmup) / max(1, total - warmup);  max(0, 0.5 (1 + cos(pi * 0.5 * 2 p)))
// - et_warmup_steps: steps > 0 ? steps : ceil(total * ratio) (TrainingArguments).
#ifndef ET_OPTIM_H
#define ET_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct et_adamw et_adamw;

typedef struct {
    double lr;            // the optimizer's lr (groups use it through lr_mult)
    double beta1, beta2;  // in [0, 1)
    double eps;           // >= 0
    double weight_decay;  // default weight decay (informational; groups set their own)
} et_adamw_config;

typedef struct {
    const char *name;     // state-name prefix (copied); NULL -> "group<k>"
    double lr;            // absolute base lr, used when lr_mult == 0
    double lr_mult;       // > 0: base lr = lr_mult * config lr
    double weight_decay;  // decoupled weight decay of this group (0 = none)
} et_param_group;

// torch.optim.AdamW defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2.
et_adamw_config et_adamw_defaults(void);
// Validates cfg (values come from user configs). *out is freed with et_adamw_free.
et_status et_adamw_new(const et_adamw_config *cfg, et_adamw **out);
void et_adamw_free(et_adamw *opt);  // NULL-safe
// Adds a group of n parameters (float leaves; retained). names: n parameter
// names (copied) or NULL for "0", "1", ... Errors: bad lr / weight decay, a non-float
// parameter, one on a device this build cannot drive (or f64 on a device), a parameter
// already in the optimizer, a duplicate state name.
// Returns the group index in *index (may be NULL).
et_status et_adamw_add_group(et_adamw *opt, const et_param_group *group, int n,
                             et_tensor *const *params, const char *const *names, int *index);
// One optimizer step with lr = base_lr * lr_factor in every group. Increments the
// optimizer's step count (et_adamw_get_step).
void et_adamw_step(et_adamw *opt, double lr_factor);

int et_adamw_num_groups(const et_adamw *opt);
double et_adamw_group_lr(const et_adamw *opt, int group);  // lr used by the last step
// All parameters in group order (borrowed; the array is valid until the next
// et_adamw_add_group or et_adamw_free).
et_tensor *const *et_adamw_params(const et_adamw *opt, int *n);

// The live state tensors and their names, in group and parameter order (the arrays and
// strings are owned by opt and valid until the next et_adamw_add_group or et_adamw_free;
// the tensors are borrowed: write into them to restore).
void et_adamw_state_tensors(et_adamw *opt, int *n, const char *const **names,
                            et_tensor *const **tensors);
int64_t et_adamw_get_step(const et_adamw *opt);
void et_adamw_set_step(et_adamw *opt, int64_t step);

// ---- gradients ------------------------------------------------------------------
// Global 2-norm of the grads of params (NULL grads skipped), f64 accumulation.
double et_grad_norm(int n, et_tensor *const *params);
// Clips as torch.nn.utils.clip_grad_norm_; returns the pre-clip total norm.
double et_clip_grad_norm(int n, et_tensor *const *params, double max_norm);
// False when any grad element is NaN or +-Inf.
bool et_grads_finite(int n, et_tensor *const *params);

// ---- schedules ------------------------------------------------------------------
typedef enum {
    ET_SCHED_CONSTANT = 0,     // get_constant_schedule
    ET_SCHED_CONSTANT_WARMUP,  // get_constant_schedule_with_warmup
    ET_SCHED_LINEAR,           // get_linear_schedule_with_warmup
    ET_SCHED_COSINE,           // get_cosine_schedule_with_warmup (num_cycles 0.5)
} et_schedule;

// HF lr_scheduler_type names: "constant", "constant_with_warmup", "linear", "cosine".
// Returns -1 when unknown.
int et_schedule_from_name(const char *name);
const char *et_schedule_name(et_schedule s);
double et_lr_factor(et_schedule s, int64_t step, int64_t total_steps, int64_t warmup_steps);
int64_t et_warmup_steps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio);

#endif
