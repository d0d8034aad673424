// tests/test_checkpoint.c - train/checkpoint: the step directory round trip, keep-last-N,
// which directories count as checkpoints, resolving, and refusing damaged checkpoints
// without touching the live tensors.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../core/optim.h"
#include "../train/checkpoint.h"
#include "cuda_mock.h"
#include "test_util.h"

#define NP 3
static const char *const g_names[NP] = {"base_model.model.layers.0.self_attn.q_proj.lora_A.weight",
                                        "model.mm_projector.0.weight",
                                        "model.landmark_expert.0.bias"};
static const int64_t g_shapes[NP][2] = {{4, 8}, {6, 5}, {7, 1}};

typedef struct {
    et_tensor *p[NP];
    et_adamw *opt;
    char root[256];
} fixture;

static void fixture_new(fixture *f, double scale, const char *tag) {
    snprintf(f->root, sizeof f->root, "/tmp/et_test_ckpt_%d_%s", (int)getpid(), tag);
    et_status_free(et_remove_tree(f->root));
    CHECK(!et_mkdirs(f->root));
    for (int i = 0; i < NP; i++) {
        f->p[i] = test_rand_tensor(ET_F32, g_shapes[i][1] == 1 ? 1 : 2, g_shapes[i], scale);
        et_set_requires_grad(f->p[i], true);
    }
    et_adamw_config cfg = et_adamw_defaults();
    CHECK(!et_adamw_new(&cfg, &f->opt));
    et_param_group g1 = {"lora", 0, 1, 0}, g2 = {"projector", 2e-5, 0, 0.1};
    CHECK(!et_adamw_add_group(f->opt, &g1, 1, f->p, g_names, NULL));
    CHECK(!et_adamw_add_group(f->opt, &g2, 2, f->p + 1, g_names + 1, NULL));
    int n;
    const char *const *sn;
    et_tensor *const *st;
    et_adamw_state_tensors(f->opt, &n, &sn, &st);
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < st[i]->numel; k++) et_set(st[i], k, scale * test_randn());
}

static void fixture_free(fixture *f) {
    for (int i = 0; i < NP; i++) et_release(f->p[i]);
    et_adamw_free(f->opt);
    et_status_free(et_remove_tree(f->root));
}

static et_train_state state_at(int64_t step) {
    et_train_state s = {step, 2 * step, 1, 3 * step, 1000 + (uint64_t)step, 1, 2, 64 * step, 0.25};
    return s;
}

static et_status write_step(fixture *f, int64_t step, int keep, char *dir, size_t cap) {
    et_train_state s = state_at(step);
    et_adamw_set_step(f->opt, step);
    return et_trainckpt_write(f->root, &s, NP, g_names, f->p, f->opt, "{\"k\": 1}", keep, dir, cap);
}

static int count_entries(const char *root, const char *prefix) {
    DIR *d = opendir(root);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

static void test_round_trip(void) {
    fixture f, g;
    fixture_new(&f, 1.0, "f");
    char dir[512];
    CHECK(!write_step(&f, 7, 2, dir, sizeof dir));
    CHECK(strstr(dir, "step-00000007") != NULL, "%s", dir);
    // a second, different fixture reads it back: every tensor and field restored
    fixture_new(&g, 3.0, "g");
    et_train_state s;
    memset(&s, 0, sizeof s);
    et_status st = et_trainckpt_read(dir, &s, NP, g_names, g.p, g.opt);
    CHECK(!st, "%s", et_status_msg(st));
    et_train_state want = state_at(7);
    CHECK(s.step == want.step && s.micro_step == want.micro_step && s.epoch == want.epoch &&
          s.position == want.position && s.rng_offset == want.rng_offset &&
          s.nan_skipped == want.nan_skipped && s.bad_samples == want.bad_samples &&
          s.tokens == want.tokens && s.last_loss == want.last_loss);
    CHECK(et_adamw_get_step(g.opt) == 7);
    for (int i = 0; i < NP; i++) CHECK(tensor_rel_err(g.p[i], f.p[i]) == 0, "param %d", i);
    int n1, n2;
    const char *const *sn;
    et_tensor *const *s1, *const *s2;
    et_adamw_state_tensors(f.opt, &n1, &sn, &s1);
    et_adamw_state_tensors(g.opt, &n2, &sn, &s2);
    CHECK(n1 == n2 && n1 >= 2 * NP);
    for (int i = 0; i < n1 && i < n2; i++)
        CHECK(tensor_rel_err(s2[i], s1[i]) == 0, "state %s", sn[i]);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(et_path_exists(path));
    et_status_free(st);
    fixture_free(&g);
    fixture_free(&f);
}

static void test_keep_last_and_latest(void) {
    fixture f;
    fixture_new(&f, 1.0, "f");
    for (int64_t s = 1; s <= 4; s++) CHECK(!write_step(&f, s * 10, 2, NULL, 0));
    CHECK(count_entries(f.root, "step-") == 2, "%d", count_entries(f.root, "step-"));
    CHECK(count_entries(f.root, ".") == 2);  // only "." and ".."
    char dir[512];
    bool found = false;
    CHECK(!et_trainckpt_latest(f.root, dir, sizeof dir, &found) && found);
    CHECK(strstr(dir, "step-00000040") != NULL, "%s", dir);
    // a crash leftover (.tmp-*) and names that are not exactly step-NNNNNNNN are ignored
    char p[600];
    const char *junk[] = {".tmp-step-00000090-123", "step-00000099x", "step-123", "step-0000009a"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", f.root, junk[i]);
        CHECK(!et_mkdirs(p));
    }
    CHECK(!et_trainckpt_latest(f.root, dir, sizeof dir, &found) && found);
    CHECK(strstr(dir, "step-00000040") != NULL, "%s", dir);
    // the next write cleans the leftover temporary directory
    CHECK(!write_step(&f, 50, 2, NULL, 0));
    snprintf(p, sizeof p, "%s/%s", f.root, junk[0]);
    CHECK(!et_path_exists(p));
    CHECK(count_entries(f.root, "step-000000") == 4);  // 40, 50 and the untouched junk 99x, 9a
    // no checkpoint at all
    char empty[300];
    snprintf(empty, sizeof empty, "%s/none", f.root);
    CHECK(!et_mkdirs(empty));
    CHECK(!et_trainckpt_latest(empty, dir, sizeof dir, &found) && !found);
    fixture_free(&f);
}

static void test_resolve(void) {
    fixture f;
    fixture_new(&f, 1.0, "f");
    char orig[128];  // the fixture root is short: /tmp/et_test_ckpt_<pid>_f
    snprintf(orig, sizeof orig, "%.100s", f.root);
    // a run directory: <out>/checkpoints/step-*
    char run[300], ck[400], dir[512], got[512];
    snprintf(run, sizeof run, "%s/run", f.root);
    snprintf(ck, sizeof ck, "%s/checkpoints", run);
    CHECK(!et_mkdirs(ck));
    et_status st = et_trainckpt_resolve(NULL, run, got, sizeof got);
    CHECK(st && et_status_code(st) == ET_ERR_MISSING && strstr(et_status_msg(st), run), "%s",
          et_status_msg(st));
    et_status_free(st);
    snprintf(f.root, sizeof f.root, "%s/run/checkpoints", orig);
    CHECK(!write_step(&f, 3, 2, dir, sizeof dir));
    CHECK(!write_step(&f, 5, 2, NULL, 0));
    CHECK(!et_trainckpt_resolve(NULL, run, got, sizeof got) && strstr(got, "step-00000005"), "%s",
          got);
    CHECK(!et_trainckpt_resolve(run, "/nonexistent", got, sizeof got) &&
          strstr(got, "step-00000005"));
    CHECK(!et_trainckpt_resolve(dir, run, got, sizeof got) && !strcmp(got, dir), "%s", got);
    snprintf(f.root, sizeof f.root, "%s", orig);
    fixture_free(&f);
}

// Cuts the last `cut` bytes off a file.
static void truncate_copy(const char *path, long cut) {
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK(truncate(path, sb.st_size - cut) == 0);
}

static void expect_refused(const char *dir, fixture *g, const char *want) {
    et_tensor *before[NP];
    for (int i = 0; i < NP; i++) before[i] = et_clone(g->p[i]);
    et_train_state s = state_at(999);
    et_status st = et_trainckpt_read(dir, &s, NP, g_names, g->p, g->opt);
    CHECK(st && strstr(et_status_msg(st), want), "wanted \"%s\", got: %s", want, et_status_msg(st));
    CHECK(s.step == 999, "state modified by a refused read");
    for (int i = 0; i < NP; i++) {
        CHECK(tensor_rel_err(g->p[i], before[i]) == 0, "param %d modified by a refused read", i);
        et_release(before[i]);
    }
    et_status_free(st);
}

static void test_damaged(void) {
    fixture f, g;
    fixture_new(&f, 1.0, "f");
    fixture_new(&g, 2.0, "g");
    char dir[512], p[700];
    CHECK(!write_step(&f, 1, 5, dir, sizeof dir));
    // a truncated trainables file
    snprintf(p, sizeof p, "%s/trainables.safetensors", dir);
    truncate_copy(p, 9);
    expect_refused(dir, &g, "trainables.safetensors");
    // a missing tensor: the reader asks for a name the file does not have
    CHECK(!write_step(&f, 2, 5, dir, sizeof dir));
    const char *names2[NP] = {g_names[0], "model.mm_projector.9.weight", g_names[2]};
    et_train_state s;
    et_status st = et_trainckpt_read(dir, &s, NP, names2, g.p, g.opt);
    CHECK(st && strstr(et_status_msg(st), "model.mm_projector.9.weight"), "%s", et_status_msg(st));
    et_status_free(st);
    // a shape mismatch
    int64_t shp[2] = {5, 5};
    et_tensor *wrong = et_zeros(ET_F32, 2, shp);
    et_tensor *ps[NP] = {g.p[0], wrong, g.p[2]};
    st = et_trainckpt_read(dir, &s, NP, g_names, ps, g.opt);
    CHECK(st && strstr(et_status_msg(st), "model.mm_projector.0.weight"), "%s", et_status_msg(st));
    et_status_free(st);
    et_release(wrong);
    // state.json with a field missing, then not JSON at all
    snprintf(p, sizeof p, "%s/state.json", dir);
    const char *bad1 = "{\"step\": 2, \"micro_step\": 4}";
    CHECK(!et_write_file_atomic(p, bad1, strlen(bad1)));
    expect_refused(dir, &g, "state.json");
    CHECK(!et_write_file_atomic(p, "{", 1));
    expect_refused(dir, &g, "state.json");
    // a truncated optimizer state
    CHECK(!write_step(&f, 3, 5, dir, sizeof dir));
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    truncate_copy(p, 100);
    expect_refused(dir, &g, "optimizer.safetensors");
    fixture_free(&g);
    fixture_free(&f);
}

// Flips one byte in the middle of a file (x ^= 0x01).
static void flip_middle_byte(const char *path) {
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0, "%s", path);
    unsigned char c = 0;
    off_t at = sb.st_size / 2;
    CHECK(pread(fd, &c, 1, at) == 1);
    c ^= 0x01;
    CHECK(pwrite(fd, &c, 1, at) == 1);
    close(fd);
}

// state.json records size + CRC-32 of every file; one flipped byte in the middle of the
// trainables or the optimizer state is refused by read, resolve and verify, naming the file.
static void test_checksums(void) {
    fixture f, g;
    fixture_new(&f, 1.0, "f");
    fixture_new(&g, 2.0, "g");
    char dir[512], p[700];
    CHECK(!write_step(&f, 4, 5, dir, sizeof dir));
    snprintf(p, sizeof p, "%s/state.json", dir);
    char *txt = NULL;
    CHECK(!et_read_file(p, 1 << 20, &txt, NULL));
    CHECK(txt && strstr(txt, "\"files\"") && strstr(txt, "\"trainables.safetensors\"") &&
              strstr(txt, "\"optimizer.safetensors\"") && strstr(txt, "\"config.json\"") &&
              strstr(txt, "\"crc32\""),
          "%s", txt ? txt : "");
    free(txt);
    // the recorded CRC equals the file's
    uint32_t crc = 0;
    int64_t bytes = 0;
    snprintf(p, sizeof p, "%s/trainables.safetensors", dir);
    CHECK(!et_trainckpt_file_crc32(p, &crc, &bytes) && bytes > 0);
    CHECK(!et_trainckpt_verify(dir));
    const char *files[2] = {"trainables.safetensors", "optimizer.safetensors"};
    for (int k = 0; k < 2; k++) {
        CHECK(!write_step(&f, 5 + k, 5, dir, sizeof dir));
        snprintf(p, sizeof p, "%s/%s", dir, files[k]);
        flip_middle_byte(p);
        expect_refused(dir, &g, files[k]);
        expect_refused(dir, &g, "checksum mismatch");
        et_status st = et_trainckpt_verify(dir);
        CHECK(st && strstr(et_status_msg(st), files[k]), "%s", et_status_msg(st));
        et_status_free(st);
        // resolving (what export / eval / generate do) refuses it too
        char got[512];
        st = et_trainckpt_resolve(dir, NULL, got, sizeof got);
        CHECK(st && strstr(et_status_msg(st), files[k]) &&
                  strstr(et_status_msg(st), "checksum mismatch"),
              "%s", et_status_msg(st));
        et_status_free(st);
        flip_middle_byte(p);  // restored: accepted again
        CHECK(!et_trainckpt_verify(dir));
    }
    // a checkpoint of an older emotune (no "files") loads, with a warning
    CHECK(!write_step(&f, 8, 5, dir, sizeof dir));
    snprintf(p, sizeof p, "%s/state.json", dir);
    CHECK(!et_read_file(p, 1 << 20, &txt, NULL));
    char *files_at = strstr(txt, ",\n\t\"files\"");
    CHECK(files_at != NULL, "%s", txt);
    if (files_at) strcpy(files_at, "\n}");
    CHECK(!et_write_file_atomic(p, txt, strlen(txt)));
    free(txt);
    et_train_state s;
    et_status st = et_trainckpt_read(dir, &s, NP, g_names, g.p, g.opt);
    CHECK(!st && s.step == 8, "%s", et_status_msg(st));
    et_status_free(st);
    // a hostile "files" entry is refused, not followed
    const char *hostile =
        "{\"format\": 1, \"step\": 8, \"micro_step\": 1, \"epoch\": 0, \"position\": 1, "
        "\"nan_skipped\": 0, \"bad_samples\": 0, \"tokens\": 1, \"rng_offset\": \"0\", "
        "\"files\": {\"../../etc/passwd\": {\"bytes\": 1, \"crc32\": \"00000000\"}, "
        "\"trainables.safetensors\": {\"bytes\": 1, \"crc32\": \"00000000\"}}}";
    CHECK(!et_write_file_atomic(p, hostile, strlen(hostile)));
    expect_refused(dir, &g, "\"../../etc/passwd\", not a file of the checkpoint");
    fixture_free(&g);
    fixture_free(&f);
}

// state.json values a reader must refuse, not cast or pick between (issue 12: fuzz_checkpoint_state
// found the out-of-range cast; duplicate keys mean different things to cJSON and Python).
static void test_state_values(void) {
    fixture f, g;
    fixture_new(&f, 1.0, "f");
    fixture_new(&g, 2.0, "g");
    char dir[512], p[700];
    CHECK(!write_step(&f, 1, 5, dir, sizeof dir));
    snprintf(p, sizeof p, "%s/state.json", dir);
    const char *huge =
        "{\"format\": 1, \"step\": 1e300, \"micro_step\": 1, \"epoch\": 0, \"position\": 0, "
        "\"rng_offset\": \"0\", \"nan_skipped\": 0, \"bad_samples\": 0, \"tokens\": 0}";
    CHECK(!et_write_file_atomic(p, huge, strlen(huge)));
    expect_refused(dir, &g,
                   "state.json: field \"step\" = 1e+300 is not a whole number in [0, 2^53]");
    const char *neg = "{\"format\": 1, \"step\": 2, \"micro_step\": -1}";
    CHECK(!et_write_file_atomic(p, neg, strlen(neg)));
    expect_refused(dir, &g, "field \"micro_step\" = -1 is not a whole number");
    const char *dup =
        "{\"format\": 1, \"step\": 1, \"micro_step\": 1, \"epoch\": 0, \"position\": 0, "
        "\"rng_offset\": \"0\", \"nan_skipped\": 0, \"bad_samples\": 0, \"tokens\": 0, "
        "\"step\": 7}";
    CHECK(!et_write_file_atomic(p, dup, strlen(dup)));
    expect_refused(dir, &g, "state.json: duplicate key \"step\" at step");
    fixture_free(&g);
    fixture_free(&f);
}

// keep_last never prunes the checkpoint just written, even when higher steps of an older
// run sort above it (the Ctrl-C at step 19 beside step-300 and step-375).
static void test_keep_last_keeps_new(void) {
    fixture f;
    fixture_new(&f, 1.0, "f");
    CHECK(!write_step(&f, 300, 2, NULL, 0));
    CHECK(!write_step(&f, 375, 2, NULL, 0));
    char dir[512];
    CHECK(!write_step(&f, 19, 2, dir, sizeof dir));
    CHECK(et_path_exists(dir) == 2, "step-19 was pruned: %s", dir);
    char p[600];
    snprintf(p, sizeof p, "%s/step-00000300", f.root);
    CHECK(et_path_exists(p) == 2, "step-300 pruned");
    snprintf(p, sizeof p, "%s/step-00000375", f.root);
    CHECK(et_path_exists(p) == 2, "step-375 pruned");
    // the run goes on: its own older checkpoints are pruned, keep_last = 2 of them kept
    CHECK(!write_step(&f, 20, 2, NULL, 0));
    CHECK(!write_step(&f, 21, 2, dir, sizeof dir));
    CHECK(et_path_exists(dir) == 2);
    snprintf(p, sizeof p, "%s/step-00000020", f.root);
    CHECK(et_path_exists(p) == 2, "step-20 (keep_last 2) pruned");
    snprintf(p, sizeof p, "%s/step-00000019", f.root);
    CHECK(!et_path_exists(p), "step-19 kept beyond keep_last");
    CHECK(count_entries(f.root, "step-") == 4, "%d", count_entries(f.root, "step-"));
    // keep_last = 1 keeps exactly the new one below it
    CHECK(!write_step(&f, 22, 1, dir, sizeof dir));
    CHECK(et_path_exists(dir) == 2);
    CHECK(count_entries(f.root, "step-") == 3, "%d", count_entries(f.root, "step-"));
    fixture_free(&f);
}

// Trainables and AdamW state on a device (the CUDA backend, or its host-memory stand-in
// without a GPU) are written through host copies and read back into host tensors.
static void test_device_tensors(void) {
    mock_backend_install();
    fixture f, h;
    fixture_new(&f, 1.0, "f");
    fixture_new(&h, 4.0, "h");
    et_device dev = {ET_CUDA, 0};
    et_tensor *dp[NP];
    for (int i = 0; i < NP; i++) {
        dp[i] = et_to_device(f.p[i], dev);
        et_set_requires_grad(dp[i], true);
    }
    et_adamw_config cfg = et_adamw_defaults();
    et_adamw *dopt = NULL;
    CHECK(!et_adamw_new(&cfg, &dopt));
    et_param_group g1 = {"lora", 0, 1, 0}, g2 = {"projector", 2e-5, 0, 0.1};
    et_status st = et_adamw_add_group(dopt, &g1, 1, dp, g_names, NULL);
    if (!st) st = et_adamw_add_group(dopt, &g2, 2, dp + 1, g_names + 1, NULL);
    CHECK(!st, "%s", et_status_msg(st));
    int n, nd;
    const char *const *sn;
    et_tensor *const *hs, *const *ds;
    et_adamw_state_tensors(f.opt, &n, &sn, &hs);
    et_adamw_state_tensors(dopt, &nd, &sn, &ds);
    CHECK(n == nd);
    for (int i = 0; i < n && i < nd; i++) et_copy_(ds[i], hs[i]);
    et_train_state s = state_at(11);
    et_adamw_set_step(dopt, 11);
    char dir[512];
    st = et_trainckpt_write(f.root, &s, NP, g_names, dp, dopt, "{}", 2, dir, sizeof dir);
    CHECK(!st, "%s", et_status_msg(st));
    et_train_state r;
    st = et_trainckpt_read(dir, &r, NP, g_names, h.p, h.opt);
    CHECK(!st, "%s", et_status_msg(st));
    for (int i = 0; i < NP; i++) CHECK(tensor_rel_err(h.p[i], f.p[i]) == 0, "param %d", i);
    et_adamw_state_tensors(h.opt, &n, &sn, &hs);
    et_tensor *const *fs;
    et_adamw_state_tensors(f.opt, &n, &sn, &fs);
    for (int i = 0; i < n; i++) CHECK(tensor_rel_err(hs[i], fs[i]) == 0, "state %s", sn[i]);
    et_status_free(st);
    for (int i = 0; i < NP; i++) et_release(dp[i]);
    et_adamw_free(dopt);
    fixture_free(&h);
    fixture_free(&f);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_keep_last_and_latest);
    RUN(test_resolve);
    RUN(test_damaged);
    RUN(test_checksums);
    RUN(test_keep_last_keeps_new);
    RUN(test_state_values);
    RUN(test_device_tensors);
    return test_summary();
}
