// train/models/projector.c - see projector.h
#include "projector.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"

et_status et_projector_type_parse(const char *s, et_projector_type *out) {
    if (s && !strcmp(s, "linear")) {
        *out = ET_PROJ_LINEAR;
        return NULL;
    }
    if (s && !strcmp(s, "mlp2x_gelu")) {
        *out = ET_PROJ_MLP2X_GELU;
        return NULL;
    }
    return et_err(ET_ERR_UNSUPPORTED,
                  "projector type \"%s\": expected \"linear\" or "
                  "\"mlp2x_gelu\"",
                  s ? s : "(null)");
}

static int n_linears(const et_projector *p) { return p->type == ET_PROJ_MLP2X_GELU ? 2 : 1; }

static void set_param_names(et_projector *p) {
    et_linear_layer *ls[2] = {&p->l1, &p->l2};
    for (int i = 0; i < 2; i++) {
        snprintf(p->param_names[2 * i], sizeof p->param_names[0], "%.160s.weight", ls[i]->name);
        snprintf(p->param_names[2 * i + 1], sizeof p->param_names[0], "%.160s.bias", ls[i]->name);
    }
}

void et_projector_set_names(et_projector *p, et_projector_names names) {
    p->names = names;
    if (names == ET_PROJ_NAMES_LLAVA) {
        et_projector_set_prefix(p, "model.mm_projector");
        return;
    }
    const bool mlp = p->type == ET_PROJ_MLP2X_GELU;
    snprintf(p->l1.name, sizeof p->l1.name, "multi_modal_projector.linear_1");
    snprintf(p->l2.name, sizeof p->l2.name, "%s", mlp ? "multi_modal_projector.linear_2" : "");
    set_param_names(p);
}

void et_projector_set_prefix(et_projector *p, const char *prefix) {
    if (p->type == ET_PROJ_MLP2X_GELU) {
        snprintf(p->l1.name, sizeof p->l1.name, "%.150s.0", prefix);
        snprintf(p->l2.name, sizeof p->l2.name, "%.150s.2", prefix);
    } else {
        snprintf(p->l1.name, sizeof p->l1.name, "%.150s", prefix);
        p->l2.name[0] = 0;
    }
    set_param_names(p);
}

static et_tensor *init_tensor(int ndim, const int64_t *shape, double bound, uint64_t seed,
                              uint64_t *offset) {
    et_tensor *t = et_empty(ET_F32, ndim, shape);
    et_rand_uniform_(t, -bound, bound, seed, *offset);
    *offset += (uint64_t)t->numel;
    et_set_requires_grad(t, true);
    return t;
}

uint64_t et_projector_init(et_projector *p, et_projector_type type, int64_t in_dim, int64_t out_dim,
                           et_projector_names names, uint64_t seed, uint64_t offset) {
    memset(p, 0, sizeof *p);
    p->type = type, p->in_dim = in_dim, p->out_dim = out_dim;
    et_projector_set_names(p, names);
    for (int i = 0; i < n_linears(p); i++) {
        et_linear_layer *l = i ? &p->l2 : &p->l1;
        const int64_t in = i ? out_dim : in_dim;
        const double bound = 1.0 / sqrt((double)in);
        l->weight = init_tensor(2, (int64_t[]){out_dim, in}, bound, seed, &offset);
        l->bias = init_tensor(1, (int64_t[]){out_dim}, bound, seed, &offset);
    }
    return offset;
}

typedef struct {
    et_st_file *f;
    et_st_index *ix;
} src_t;

static int src_count(const src_t *s) {
    return s->f ? et_st_num_tensors(s->f) : et_st_index_num_tensors(s->ix);
}
static const char *src_name(const src_t *s, int i) {
    return s->f ? et_st_name(s->f, i) : et_st_index_name(s->ix, i);
}
static bool src_has(const src_t *s, const char *name) {
    return (s->f ? et_st_find(s->f, name) : et_st_index_find(s->ix, name)) >= 0;
}
static et_status src_info(const src_t *s, const char *name, et_st_info *out) {
    return s->f ? et_st_info_of(s->f, name, out) : et_st_index_info_of(s->ix, name, out);
}
static et_status src_load(src_t *s, const char *name, et_tensor **out) {
    return s->f ? et_st_load(s->f, name, out) : et_st_index_load(s->ix, name, out);
}

static void list_add(char *buf, size_t cap, const char *item) {
    size_t n = strlen(buf);
    if (n + 8 >= cap) return;
    int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", item);
    if (w < 0 || (size_t)w >= cap - n) snprintf(buf + cap - 5, 5, "...");
}

et_status et_projector_load(et_projector *p, et_projector_type type, int64_t in_dim,
                            int64_t out_dim, et_st_file *f, et_st_index *ix) {
    ET_ASSERT((f != NULL) != (ix != NULL), "et_projector_load: pass a file or an index");
    src_t src = {f, ix};
    const char *what = f ? et_st_path(f) : "sharded checkpoint";
    memset(p, 0, sizeof *p);
    p->type = type, p->in_dim = in_dim, p->out_dim = out_dim;
    et_projector_set_names(p, ET_PROJ_NAMES_LLAVA);
    if (!src_has(&src, p->param_names[0])) {
        et_projector_set_names(p, ET_PROJ_NAMES_LLAVA_HF);
        if (!src_has(&src, p->param_names[0])) {
            et_projector_set_names(p, ET_PROJ_NAMES_LLAVA);
            char a[176];
            snprintf(a, sizeof a, "%s", p->param_names[0]);
            et_projector_set_names(p, ET_PROJ_NAMES_LLAVA_HF);
            return et_err(ET_ERR_MISSING, "%s: no projector (neither \"%s\" nor \"%s\")", what, a,
                          p->param_names[0]);
        }
    }
    const int np = 2 * n_linears(p);
    const int64_t shapes[4][2] = {
        {out_dim, in_dim}, {out_dim, 0}, {out_dim, out_dim}, {out_dim, 0}};
    char missing[400] = "", bad[400] = "", extra[400] = "", item[300];
    for (int i = 0; i < np; i++) {
        et_st_info info;
        et_status s = src_info(&src, p->param_names[i], &info);
        if (s) {
            et_status_free(s);
            list_add(missing, sizeof missing, p->param_names[i]);
            continue;
        }
        const int nd = i % 2 ? 1 : 2;
        if (info.ndim != nd || info.shape[0] != shapes[i][0] ||
            (nd == 2 && info.shape[1] != shapes[i][1])) {
            char exp[64];
            if (nd == 2)
                snprintf(exp, sizeof exp, "[%lld, %lld]", (long long)shapes[i][0],
                         (long long)shapes[i][1]);
            else
                snprintf(exp, sizeof exp, "[%lld]", (long long)shapes[i][0]);
            snprintf(item, sizeof item, "%s (expected %s)", p->param_names[i], exp);
            list_add(bad, sizeof bad, item);
        }
    }
    const char *mod =
        p->names == ET_PROJ_NAMES_LLAVA ? "model.mm_projector." : "multi_modal_projector.";
    for (int i = 0; i < src_count(&src); i++) {
        const char *nm = src_name(&src, i);
        if (strncmp(nm, mod, strlen(mod))) continue;
        bool known = false;
        for (int k = 0; k < np && !known; k++) known = !strcmp(nm, p->param_names[k]);
        if (!known) list_add(extra, sizeof extra, nm);
    }
    if (*missing || *bad || *extra)
        return et_err(ET_ERR_FORMAT,
                      "%s: projector %s (%lld -> %lld): missing [%s]; mis-shaped "
                      "[%s]; unexpected [%s]",
                      what, type == ET_PROJ_LINEAR ? "linear" : "mlp2x_gelu", (long long)in_dim,
                      (long long)out_dim, missing, bad, extra);
    for (int i = 0; i < np; i++) {
        et_tensor *t = NULL;
        et_status s = src_load(&src, p->param_names[i], &t);
        if (s) {
            et_projector_free(p);
            return s;
        }
        et_tensor *c = et_empty(ET_F32, t->ndim, t->shape);
        et_copy_(c, t);
        et_release(t);
        et_set_requires_grad(c, true);
        et_linear_layer *l = i < 2 ? &p->l1 : &p->l2;
        if (i % 2)
            l->bias = c;
        else
            l->weight = c;
    }
    return NULL;
}

et_tensor *et_projector_forward(et_projector *p, et_tensor *x) {
    ET_ASSERT(p->l1.weight, "et_projector_forward: projector not initialised");
    ET_ASSERT(x->ndim >= 1 && et_last(x) == p->in_dim,
              "et_projector_forward: x must be [..., %lld]", (long long)p->in_dim);
    et_tensor *h = et_linear_layer_forward(&p->l1, x, NULL);
    if (p->type == ET_PROJ_LINEAR) return h;
    et_tensor *g = et_gelu(h);
    et_release(h);
    et_tensor *y = et_linear_layer_forward(&p->l2, g, NULL);
    et_release(g);
    return y;
}

int et_projector_params(et_projector *p, const char **names, et_tensor **tensors) {
    const int np = 2 * n_linears(p);
    for (int i = 0; i < np; i++) {
        et_linear_layer *l = i < 2 ? &p->l1 : &p->l2;
        if (names) names[i] = p->param_names[i];
        if (tensors) tensors[i] = i % 2 ? l->bias : l->weight;
    }
    return np;
}

void et_projector_free(et_projector *p) {
    et_linear_layer_free(&p->l1);
    et_linear_layer_free(&p->l2);
}
